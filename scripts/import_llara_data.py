#!/usr/bin/env python3
"""Convert LLaRA's processed split pickles (train_data.df, Val_data.df, Test_data.df, id2name.txt)
into an "sbtrec dataset dir, version 1" (dataset.json, items.tsv, train/val/test.tsv).

Input (LLaRA format): pandas DataFrame pickles with columns
  seq      list of 10 item ids, oldest first, right-padded with the padding id (= number of items);
           MovieLens files store (item_id, rating) tuples instead of ints, padding (N, 0)
  len_seq  number of real history items (quirk: lastfm train rows with empty history store 1)
  next     the target item (int, or (item_id, rating) tuple for MovieLens)

Output split files hold one line per row: `user_id<TAB>h1 h2 ... hk<TAB>target`, history oldest
first, no padding; an empty history gives an empty middle field (`uid\\t\\ttarget`). All rows are
kept: the C++ loader applies any minimum-history filter.

Synthetic user ids (LLaRA stores none):
  * train: a row whose history is empty starts a new user; the first user is 0 (rows before the
    first empty-history row, if any, also belong to user 0);
  * val: one new user per row, continuing after the last train user id;
  * test: one new user per row, continuing after the last val user id.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtrec_io import atomic_write_text  # noqa: E402
from typing import Iterable

# Source file name for each split, in output order (val ids continue after train, test after val).
SPLITS = [("train", "train_data.df"), ("val", "Val_data.df"), ("test", "Test_data.df")]


class DataError(Exception):
    """Bad input; the message names the file and what to do."""





def read_titles(path: str) -> list[str]:
    """Parse `id::name` lines; ids must be exactly 0..N-1 in order."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: missing; the source dir must contain id2name.txt (`id::name` per line)")
    titles: list[str] = []
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 ({e})") from e
    # Split on "\n" only so that a stray "\r" inside a title is not mistaken for a line end.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for lineno, line in enumerate(lines, 1):
        if line.endswith("\r"):
            line = line[:-1]
        idx, sep, name = line.partition("::")
        if not sep:
            raise DataError(f"{path}:{lineno}: expected `id::name`, got {line[:80]!r}")
        try:
            item_id = int(idx)
        except ValueError:
            raise DataError(f"{path}:{lineno}: item id {idx!r} is not an integer") from None
        if item_id != lineno - 1:
            raise DataError(f"{path}:{lineno}: item id {item_id}, expected {lineno - 1} "
                               f"(ids must be exactly 0..N-1 in order)")
        # Titles stay byte-exact (HTML entities included); only characters that would break the
        # TSV line structure are replaced.
        titles.append(name.replace("\t", " ").replace("\r", " ").replace("\n", " "))
    if not titles:
        raise DataError(f"{path}: empty; expected one `id::name` line per item")
    return titles


def item_of(value, path: str, row: int, col: str) -> int:
    """Accept a plain int or a MovieLens (item_id, rating) tuple; return the item id."""
    if isinstance(value, (tuple, list)):
        if len(value) < 1:
            raise DataError(f"{path}: row {row} (0-based): empty tuple in column {col!r}")
        value = value[0]
    try:
        iv = int(value)
    except (TypeError, ValueError):
        raise DataError(f"{path}: row {row} (0-based): column {col!r} holds {value!r}, not an item id") from None
    if iv != value:
        raise DataError(f"{path}: row {row} (0-based): column {col!r} holds non-integer {value!r}")
    return iv


def load_split(path: str, n_items: int, split: str):
    """Return (rows, warnings) where rows is a list of (history, target)."""
    import pandas as pd  # imported lazily so --help works without pandas

    try:
        df = pd.read_pickle(path)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad input file
        raise DataError(f"{path}: cannot read as a pandas pickle ({type(e).__name__}: {e})") from e
    for col in ("seq", "len_seq", "next"):
        if col not in getattr(df, "columns", []):
            raise DataError(f"{path}: missing column {col!r}; expected LLaRA columns seq, len_seq, next")
    pad = n_items
    rows: list[tuple[list[int], int]] = []
    len_mismatch: list[tuple[int, int]] = []
    quirk = 0
    junk_after_pad = 0
    for row, (seq, len_seq, nxt) in enumerate(zip(df["seq"], df["len_seq"], df["next"])):
        if not isinstance(seq, (list, tuple)):
            raise DataError(f"{path}: row {row} (0-based): seq is {type(seq).__name__}, expected a list")
        ids = [item_of(v, path, row, "seq") for v in seq]
        for i in ids:
            if not 0 <= i <= pad:
                raise DataError(f"{path}: row {row} (0-based): seq item {i} outside [0, {n_items}) "
                                   f"and not the padding id {pad}; wrong id2name.txt?")
        hist = ids[: ids.index(pad)] if pad in ids else ids
        if any(i != pad for i in ids[len(hist):]):
            junk_after_pad += 1  # real ids after padding: right-padding assumption broken
        target = item_of(nxt, path, row, "next")
        if not 0 <= target < n_items:
            raise DataError(f"{path}: row {row} (0-based): next item {target} outside [0, {n_items})")
        ls = int(len_seq)
        if ls != len(hist):
            if split == "train" and len(hist) == 0 and ls == 1:
                quirk += 1  # known LLaRA quirk, not worth a warning
            else:
                len_mismatch.append((row, ls))
        rows.append((hist, target))
    return rows, {"len_seq_mismatch": len_mismatch, "empty_history_len1_quirk": quirk,
                  "ids_after_padding": junk_after_pad}


def assign_users(split: str, rows, next_uid: int) -> tuple[list[int], int]:
    """Synthetic user ids (see module docstring); returns (ids, next free id)."""
    uids: list[int] = []
    if split == "train":
        uid = next_uid - 1
        for i, (hist, _) in enumerate(rows):
            if not hist or i == 0:
                uid += 1
            uids.append(uid)
        return uids, (uid + 1 if rows else next_uid)
    uids = list(range(next_uid, next_uid + len(rows)))
    return uids, next_uid + len(rows)


def read_tag_genres(hetrec: str, titles: list[str], per_item: int) -> tuple[dict[int, list[str]], int]:
    """Genres of LastFM items from HetRec 2011's tags: an artist's `per_item` most applied tags (by how
    many (user, tag) assignments it got; ties to the lower tag id), the artist found by its name in
    artists.dat (exact, else case-insensitive). Returns {item id: [tag, ...]} and the items matched."""
    def rows(name, encoding):
        path = os.path.join(hetrec, name)
        if not os.path.isfile(path):
            raise DataError(f"{path}: missing; --tags takes HetRec 2011's hetrec2011-lastfm-2k directory")
        with open(path, encoding=encoding, newline="") as f:
            lines = f.read().replace("\r\n", "\n").split("\n")
        return [line.split("\t") for line in lines[1:] if line]
    artists = {}
    for r in rows("artists.dat", "utf-8"):
        artists.setdefault(r[1], int(r[0]))
    folded = {name.casefold(): i for name, i in artists.items()}
    tag_names = {int(r[0]): r[1].replace("|", "/") for r in rows("tags.dat", "latin-1")}
    counts: dict[int, dict[int, int]] = {}
    for r in rows("user_taggedartists.dat", "ascii"):
        a, t = int(r[1]), int(r[2])
        counts.setdefault(a, {})
        counts[a][t] = counts[a].get(t, 0) + 1
    genres, matched = {}, 0
    for item, title in enumerate(titles):
        a = artists.get(title, folded.get(title.casefold()))
        if a is None:
            continue
        matched += 1
        top = sorted(counts.get(a, {}).items(), key=lambda kv: (-kv[1], kv[0]))[:per_item]
        if top:
            genres[item] = [tag_names[t] for t, _ in top if t in tag_names]
    return genres, matched


def format_rows(uids: Iterable[int], rows) -> str:
    return "".join(f"{u}\t{' '.join(map(str, h))}\t{t}\n" for u, (h, t) in zip(uids, rows))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", required=True, help="dir with LLaRA's *.df files and id2name.txt")
    ap.add_argument("--out", required=True, help="output sbtrec dataset dir (created if missing)")
    ap.add_argument("--name", help="dataset name (default: basename of --src)")
    ap.add_argument("--tags", help="LastFM: HetRec 2011's hetrec2011-lastfm-2k dir; writes genres.tsv, each artist's "
                    "most applied tags as its genres (eval.noise.kind off_genre, genre purity)")
    ap.add_argument("--tags-per-item", type=int, default=3, help="tags kept per artist (default 3)")
    args = ap.parse_args(argv)

    src = os.path.abspath(args.src)
    name = args.name or os.path.basename(src.rstrip(os.sep))
    try:
        if not os.path.isdir(src):
            raise DataError(f"{src}: not a directory; pass LLaRA's data dir with --src")
        titles = read_titles(os.path.join(src, "id2name.txt"))
        n_items = len(titles)
        present = [(s, os.path.join(src, f)) for s, f in SPLITS if os.path.isfile(os.path.join(src, f))]
        if not present:
            raise DataError(f"{src}: none of {', '.join(f for _, f in SPLITS)} found")
        loaded = []
        for split, path in present:
            rows, warn = load_split(path, n_items, split)
            loaded.append((split, path, rows, warn))
        genres, matched = read_tag_genres(args.tags, titles, args.tags_per_item) if args.tags else ({}, 0)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    os.makedirs(args.out, exist_ok=True)
    atomic_write_text(os.path.join(args.out, "items.tsv"),
                      "".join(f"{i}\t{t}\n" for i, t in enumerate(titles)))
    next_uid = 0
    splits_meta = {}
    for split, path, rows, warn in loaded:
        uids, next_uid = assign_users(split, rows, next_uid)
        atomic_write_text(os.path.join(args.out, f"{split}.tsv"), format_rows(uids, rows))
        splits_meta[split] = len(rows)
        ge3 = sum(1 for h, _ in rows if len(h) >= 3)
        n_users = len(set(uids))
        print(f"{split:5s} rows={len(rows)} users={n_users} rows_hist>=3={ge3} "
              f"(from {os.path.basename(path)})")
        bad = warn["len_seq_mismatch"]
        if bad:
            # Padding-derived history is what gets written; len_seq is only cross-checked.
            shown = ", ".join(f"{r} (len_seq={ls}, history={len(rows[r][0])})"
                              for r, ls in bad[:5])
            print(f"warning: {path}: {len(bad)} rows whose len_seq disagrees with the padding-derived "
                  f"history length; rows (0-based): {shown}", file=sys.stderr)
        if warn["ids_after_padding"]:
            print(f"warning: {path}: {warn['ids_after_padding']} rows have real ids after the first "
                  f"padding id (ignored)", file=sys.stderr)
        if warn["empty_history_len1_quirk"]:
            print(f"  note: {warn['empty_history_len1_quirk']} rows with empty history store "
                  f"len_seq=1 (known LLaRA quirk)")
    if args.tags:
        atomic_write_text(os.path.join(args.out, "genres.tsv"),
                          "".join(f"{i}\t{'|'.join(g)}\n" for i, g in sorted(genres.items())))
        print(f"genres.tsv: {len(genres)} of {n_items} items have tags ({matched} artists found in "
              f"{os.path.join(args.tags, 'artists.dat')})")
    meta = {"format": "sbtrec-dataset", "version": 1, "name": name, "num_items": n_items,
            "source": src, "splits": splits_meta}
    atomic_write_text(os.path.join(args.out, "dataset.json"), json.dumps(meta, indent=2) + "\n")
    print(f"wrote {os.path.abspath(args.out)}: num_items={n_items}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
