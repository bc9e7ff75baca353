"""Reference tokenizations for sbtrec's tokenizer test: for each text of a JSON corpus, the ids and
decoded text of transformers' Llama tokenizer (loaded from a tokenizer.model as a user would, BOS on)
and of SentencePiece itself (BOS prepended by hand). With --added-tokens, also the ids and decoded text
after tokenizer.add_special_tokens({"additional_special_tokens": [...]}) (LLaRA's "[HistoryEmb]" etc.)."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtrec_io import atomic_write_text  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tokenizer", required=True, help="SentencePiece tokenizer.model")
    ap.add_argument("--corpus", required=True, help="JSON list of strings")
    ap.add_argument("--out", required=True, help="JSON output")
    ap.add_argument("--added-tokens", default="", help='comma-separated special tokens to add, e.g. "[HistoryEmb],[PH]"')
    args = ap.parse_args(argv)
    added = [t for t in args.added_tokens.split(",") if t]
    try:
        corpus = json.load(open(args.corpus, encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise SystemExit(f"error: {args.corpus}: cannot read a JSON list of strings ({e})")
    if not isinstance(corpus, list) or not all(isinstance(t, str) for t in corpus):
        raise SystemExit(f"error: {args.corpus}: expected a JSON list of strings")
    if not os.path.isfile(args.tokenizer):
        raise SystemExit(f"error: {args.tokenizer}: no such file")
    import sentencepiece as spm
    import transformers
    from transformers import AutoTokenizer

    sp = spm.SentencePieceProcessor(model_file=args.tokenizer)
    with tempfile.TemporaryDirectory() as d:
        shutil.copy(args.tokenizer, os.path.join(d, "tokenizer.model"))
        # The settings of Llama-2's tokenizer_config.json: BOS added, no EOS, LlamaTokenizer.
        cfg = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
               "unk_token": "<unk>", "pad_token": None, "clean_up_tokenization_spaces": False,
               "legacy": False, "tokenizer_class": "LlamaTokenizer"}
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump(cfg, f)
        tok = AutoTokenizer.from_pretrained(d)
        with_added = None
        if added:
            with_added = AutoTokenizer.from_pretrained(d)
            with_added.add_special_tokens({"additional_special_tokens": added})
        rows = []
        for text in corpus:
            ids = tok.encode(text)
            sp_ids = [sp.bos_id()] + sp.encode(text)
            row = {"text": text, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=True),
                   "sp_ids": sp_ids, "sp_decoded": sp.decode(sp_ids[1:])}
            if with_added is not None:
                aids = with_added.encode(text)
                row.update(added_ids=aids, added_decoded=with_added.decode(aids, skip_special_tokens=False))
            rows.append(row)
    out = {"transformers": transformers.__version__, "tokenizer_class": type(tok).__name__, "rows": rows}
    if with_added is not None:
        out["added_tokens"] = {t: with_added.convert_tokens_to_ids(t) for t in added}
        out["added_vocab_size"] = len(with_added)
    atomic_write_text(args.out, json.dumps(out, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}: {len(rows)} texts ({type(tok).__name__}, transformers {transformers.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
