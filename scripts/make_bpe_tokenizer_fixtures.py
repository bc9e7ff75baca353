"""Reference tokenizations for sbtrec's byte-level BPE tokenizer test (tests/llm/bpe_tokenizer_test.cpp).

--gguf MODEL.gguf: loads transformers' tokenizer from the GGUF as a user would (AutoTokenizer with
gguf_file=), saves it (OUT/gguf/tokenizer.json, the C++ test's input) and writes OUT/ref.json: for each
text of the JSON corpus its ids and decoded text (skip_special_tokens True and False); decoded text for
seeded random id sequences (partial UTF-8, special tokens between bytes); the same after
add_special_tokens; and the ids of tokenizer.json variants run by tokenizers itself (OUT/<variant>/
tokenizer.json: SmolLM's own Digits + ByteLevel pre-tokenizer, a Llama-3 style Split, add_prefix_space,
"a b" string merges with BOS/EOS added by the post-processor, added tokens with lstrip/rstrip and
normalized=true).

--check-dir DIR (repeatable): loads each directory sbtrec's write_tokenizer_json wrote with
AutoTokenizer.from_pretrained(DIR) and writes OUT/ref.json with its ids for the corpus and its
special tokens and chat template, so the C++ test can require transformers to agree with it."""
from __future__ import annotations

import argparse
import copy
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtrec_io import atomic_write_text  # noqa: E402

ADDED = ["[HistoryEmb]", "[CansEmb]", "[PH]", "Hello", "<|im_end|>"]
ADDED_TEXTS = ["This user has watched [HistoryEmb] Toy Story, [HistoryEmb] Heat.", "candidates:[CansEmb][CansEmb] x",
               " [PH] leading space", "a[PH]b", "[PH]\n[CansEmb]", "Hello world, Hello", "[History] [HistoryEmb",
               "<|im_start|>[PH]<|im_end|>"]
# transformers' Llama-3 split (integrations/gguf), run here on SmolLM2's vocabulary: it exercises
# Split(Regex) with case-insensitive groups and {1,3} repeats, not a tokenizer anyone ships.
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def die(msg: str) -> None:
    raise SystemExit(f"error: {msg}")


def read_corpus(path: str) -> list[str]:
    try:
        corpus = json.load(open(path, encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        die(f"{path}: cannot read a JSON list of strings ({e})")
    if not isinstance(corpus, list) or not all(isinstance(t, str) for t in corpus):
        die(f"{path}: expected a JSON list of strings")
    return corpus


def variants(tokenizer_json: dict) -> dict[str, dict]:
    def byte_level(use_regex=True, prefix=False):
        return {"type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": True, "use_regex": use_regex}

    out = {}
    v = copy.deepcopy(tokenizer_json)
    v["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True},
                                                                 byte_level()]}
    out["smollm"] = v
    v = copy.deepcopy(tokenizer_json)
    v["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated", "invert": False},
        byte_level(use_regex=False)]}
    out["llama3_split"] = v
    v = copy.deepcopy(tokenizer_json)
    v["pre_tokenizer"] = byte_level(prefix=True)
    out["prefix_space"] = v
    v = copy.deepcopy(tokenizer_json)
    v["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in v["model"]["merges"]]
    bos, eos = "<|im_start|>", "<|im_end|>"
    specials = {t: {"id": t, "ids": [v["model"]["vocab"][t]], "tokens": [t]} for t in (bos, eos)}
    v["post_processor"] = {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                      {"SpecialToken": {"id": eos, "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": specials}
    out["string_merges_bos_eos"] = v
    v = copy.deepcopy(tokenizer_json)
    n = len(v["model"]["vocab"])
    for i, (content, special, normalized, strip) in enumerate(
            [("[L]", True, False, True), ("my tok", False, True, False), ("é", False, True, False)]):
        v["added_tokens"].append({"id": n + i, "content": content, "single_word": False, "lstrip": strip,
                                  "rstrip": strip, "normalized": normalized, "special": special})
    out["added_strip"] = v
    return out


def reference(args, corpus: list[str]) -> dict:
    import tokenizers
    import transformers
    from transformers import AutoTokenizer

    if not os.path.isfile(args.gguf):
        die(f"{args.gguf}: no such file")
    tok = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(args.gguf)), gguf_file=os.path.basename(args.gguf))
    gguf_dir = os.path.join(args.out, "gguf")
    tok.save_pretrained(gguf_dir)
    rows = []
    for text in corpus:
        ids = tok.encode(text)
        rows.append({"text": text, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=True),
                     "decoded_special": tok.decode(ids, skip_special_tokens=False)})

    # Random id sequences: mostly single bytes and short tokens, so partial UTF-8 is common.
    rng = random.Random(1234)
    n = len(tok)
    singles = [i for i in range(n) if len(tok.convert_ids_to_tokens(i)) == 1]
    specials = sorted(tok.all_special_ids)
    decodes = []
    for _ in range(400):
        ids = [rng.choice(singles) if rng.random() < 0.6 else rng.choice(specials) if rng.random() < 0.3 else
               rng.randrange(n) for _ in range(rng.randint(1, 8))]
        decodes.append({"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=True),
                        "decoded_special": tok.decode(ids, skip_special_tokens=False)})

    with_added = AutoTokenizer.from_pretrained(gguf_dir)
    with_added.add_special_tokens({"additional_special_tokens": ADDED})
    added_rows = []
    for text in ADDED_TEXTS:
        ids = with_added.encode(text)
        added_rows.append({"text": text, "ids": ids, "decoded": with_added.decode(ids, skip_special_tokens=True),
                           "decoded_special": with_added.decode(ids, skip_special_tokens=False)})

    base = json.load(open(os.path.join(gguf_dir, "tokenizer.json"), encoding="utf-8"))
    variant_ids = {}
    for name, v in variants(base).items():
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        atomic_write_text(os.path.join(d, "tokenizer.json"), json.dumps(v, ensure_ascii=False))
        t = tokenizers.Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        ids = [t.encode(text, add_special_tokens=True).ids for text in corpus]
        variant_ids[name] = {"ids": ids, "decoded": [t.decode(i, skip_special_tokens=True) for i in ids],
                             "decoded_special": [t.decode(i, skip_special_tokens=False) for i in ids]}

    return {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
            "tokenizer_class": type(tok).__name__, "vocab_size": len(tok),
            "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id,
            "clean_up_tokenization_spaces": tok.clean_up_tokenization_spaces, "chat_template": tok.chat_template,
            "pre_tokenizer": str(tok.backend_tokenizer.pre_tokenizer),
            "rows": rows, "decodes": decodes, "variants": variant_ids,
            "added": {"tokens": [[t, with_added.convert_tokens_to_ids(t)] for t in ADDED], "vocab_size": len(with_added),
                      "rows": added_rows}}


def check(args, corpus: list[str]) -> dict:
    import transformers
    from transformers import AutoTokenizer

    dirs = {}
    for d in args.check_dir:
        if not os.path.isfile(os.path.join(d, "tokenizer.json")):
            die(f"{d}: no tokenizer.json")
        tok = AutoTokenizer.from_pretrained(d)
        ids = [tok.encode(text) for text in corpus]
        dirs[os.path.basename(os.path.normpath(d))] = {
            "tokenizer_class": type(tok).__name__, "vocab_size": len(tok), "ids": ids,
            "decoded": [tok.decode(i, skip_special_tokens=True) for i in ids],
            "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id,
            "chat_template": tok.chat_template}
    return {"transformers": transformers.__version__, "dirs": dirs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", help="GGUF model file whose tokenizer is the reference")
    ap.add_argument("--check-dir", action="append", default=[], help="directory written by write_tokenizer_json")
    ap.add_argument("--corpus", required=True, help="JSON list of strings")
    ap.add_argument("--out", required=True, help="output directory (ref.json and, with --gguf, tokenizer.json files)")
    args = ap.parse_args(argv)
    if bool(args.gguf) == bool(args.check_dir):
        die("pass either --gguf or --check-dir")
    corpus = read_corpus(args.corpus)
    os.makedirs(args.out, exist_ok=True)
    out = reference(args, corpus) if args.gguf else check(args, corpus)
    atomic_write_text(os.path.join(args.out, "ref.json"), json.dumps(out, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}/ref.json: {len(corpus)} texts (transformers {out['transformers']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
