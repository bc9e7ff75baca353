"""File helpers shared by the project's Python scripts: atomic writes, so an interrupted script never
leaves a half-written dataset, checkpoint, fixture or plot behind."""
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
