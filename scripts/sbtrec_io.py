"""Helpers shared by the project's Python scripts: atomic writes, so an interrupted script never leaves
a half-written dataset, checkpoint, fixture or plot behind; and the seeded evaluation candidate sets,
recomputed bit for bit as the C++ draws them (include/sbtrec/data/candidates.h)."""
from __future__ import annotations

import os
import tempfile
from typing import Callable


def atomic_write(path: str, write: Callable[[str], None], suffix: str = "") -> None:
    """Calls write(tmp_path) for a temporary file beside `path`, then renames it over `path`."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=d)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    atomic_write(path, write)


def atomic_write_dir(path: str, write: Callable[[str], None]) -> None:
    """Calls write(tmp_dir) for a fresh directory beside `path`, then swaps it in for `path` (a model dir written
    by save_pretrained, a fixture case). An existing `path` is replaced only once the new one is complete."""
    import shutil

    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        # mkdtemp makes 0700, and some writers (safetensors) create 0600 files: give the tree normal modes.
        for root, dirs, files in os.walk(tmp):
            for d_ in dirs:
                os.chmod(os.path.join(root, d_), 0o777 & ~umask)
            for f_ in files:
                os.chmod(os.path.join(root, f_), 0o666 & ~umask)
        os.chmod(tmp, 0o777 & ~umask)
        if os.path.lexists(path):
            # rename() cannot replace a non-empty directory: move the old one aside first, then drop it.
            old = tempfile.mkdtemp(prefix=".old-", dir=parent)
            os.rmdir(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --- Candidate sets: a bit-exact mirror of include/sbtrec/common/counter_rng.h and
# src/data/candidates.cpp. Python ints are unbounded, so every step is masked to 64 bits.
_MASK64 = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
_SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


def splitmix64(x: int) -> int:
    x = (x + _GAMMA) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


class CounterStream:
    """Value k of the stream is splitmix64(key + k * gamma); below(n) is exact-uniform on [0, n)."""

    def __init__(self, key: int) -> None:
        self.key = key & _MASK64
        self.count = 0

    def next(self) -> int:
        v = splitmix64((self.key + self.count * _GAMMA) & _MASK64)
        self.count += 1
        return v

    def below(self, n: int) -> int:
        rejected = (1 << 64) % n  # values under it would make `v % n` favour small results
        v = self.next()
        while v < rejected:
            v = self.next()
        return v % n


def candidate_lists(samples, num_items: int, num_negatives: int, seed: int, split: str) -> list[list[int]]:
    """Candidate item lists (internal ids, in candidate order) for `samples`, a sequence of
    (history, target) pairs of internal ids in the split's order, as sbtrec's make_candidates draws them."""
    if split not in _SPLIT_CODES:
        raise ValueError(f"split {split!r}: expected one of {sorted(_SPLIT_CODES)}")
    split_key = splitmix64(splitmix64(seed & _MASK64) ^ _SPLIT_CODES[split])
    out = []
    for i, (history, target) in enumerate(samples):
        excluded = set(history) | {target}
        if num_items - len(excluded) < num_negatives:
            raise ValueError(f"{split} sample {i}: only {num_items - len(excluded)} items are outside its "
                             f"history, fewer than num_negatives={num_negatives}")
        rng = CounterStream(splitmix64(split_key ^ i))
        items = [target]
        while len(items) < num_negatives + 1:
            c = rng.below(num_items)
            if c not in excluded:
                excluded.add(c)
                items.append(c)
        for j in range(len(items) - 1, 0, -1):
            r = rng.below(j + 1)
            items[j], items[r] = items[r], items[j]
        out.append(items)
    return out
