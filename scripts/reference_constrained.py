"""Reference outputs of transformers' constrained generation (`generate(prefix_allowed_tokens_fn=...)`) for
sbtrec's parity test of constrained decoding (eval.mode: constrained, llm::TokenTrie): per prompt a set of
allowed answers (token sequences, each ending in EOS), a prefix tree over them, and the greedy and beam
(num_beams 3) outputs of left-padded batched generation restricted to that tree.
  --out DIR           writes DIR/tiny/ (a random tiny Llama in Hugging Face's format: config.json +
                      model.safetensors) and DIR/tiny.json; with --gguf also DIR/smollm.json
  --gguf FILE         SmolLM2-135M-Instruct (the GGUF scripts/setup.sh installs): three chat prompts
                      asking for one of five movie titles, the answers tokenized as "title<|im_end|>"
Each JSON: {"eos", "pad", "max_new_tokens", "cases": [{"input_ids", "attention_mask", "answers"}],
"greedy": [[new ids]], "beam": [[new ids]], "num_beams"} (new ids padded with "pad" after EOS, as
transformers returns them). The tree's rule, as sbtrec's: after the generated tokens, the tokens that
continue some answer; off the tree or past an answer's end, EOS only.
Usage: reference_constrained.py --out DIR [--gguf FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtrec_io import atomic_write_text  # noqa: E402


def tree(answers):
    root = {}
    for a in answers:
        node = root
        for t in a:
            node = node.setdefault(t, {})
    return root


def allowed_fn(trees, prompt_len, eos):
    def fn(batch_id, sent):
        node = trees[batch_id]
        for t in sent[prompt_len:].tolist():
            node = node.get(t)
            if node is None:
                return [eos]
        return sorted(node) if node else [eos]
    return fn


def run(model, cases, eos, pad, max_new, num_beams):
    import torch
    width = max(len(c["input_ids"]) for c in cases)
    ids = torch.tensor([[pad] * (width - len(c["input_ids"])) + c["input_ids"] for c in cases])
    mask = torch.tensor([[0] * (width - len(c["input_ids"])) + [1] * len(c["input_ids"]) for c in cases])
    for c, m in zip(cases, mask.tolist()):
        c["attention_mask"] = m
    trees = [tree(c["answers"]) for c in cases]
    with torch.no_grad():
        out = model.generate(ids, attention_mask=mask, max_new_tokens=max_new, do_sample=False, num_beams=num_beams,
                             eos_token_id=eos, pad_token_id=pad, prefix_allowed_tokens_fn=allowed_fn(trees, width, eos))
    return [row[width:].tolist() for row in out]


def write(path, model, cases, eos, pad, max_new):
    for c in cases:
        c["input_ids"] = [int(t) for t in c["input_ids"]]
    padded = [dict(c) for c in cases]
    greedy = run(model, padded, eos, pad, max_new, 1)
    beam = run(model, padded, eos, pad, max_new, 3)
    for c, p in zip(cases, padded):
        c["attention_mask"] = p["attention_mask"]
    doc = {"eos": eos, "pad": pad, "max_new_tokens": max_new, "num_beams": 3, "cases": cases, "greedy": greedy,
           "beam": beam}
    atomic_write_text(path, json.dumps(doc, indent=1))


def tiny(out):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=256, vocab_size=128, pad_token_id=0,
                      bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg).eval()
    model.save_pretrained(os.path.join(out, "tiny"), safe_serialization=True)
    g = torch.Generator().manual_seed(1)
    cases = []
    for length in (5, 9, 7):
        prompt = torch.randint(3, 128, (length,), generator=g).tolist()
        # Four answers of 1-4 tokens (ids >= 3) with shared first tokens, each ending in EOS.
        first = torch.randint(3, 128, (2,), generator=g).tolist()
        answers = []
        for k in range(4):
            n = 1 + k
            body = [first[k % 2]] + torch.randint(3, 128, (n - 1,), generator=g).tolist()
            answers.append(body + [2])
        cases.append({"input_ids": prompt, "answers": answers})
    write(os.path.join(out, "tiny.json"), model, cases, eos=2, pad=0, max_new=6)


def smollm(gguf, out):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    d, f = os.path.split(os.path.abspath(gguf))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    asks = [("I liked Toy Story and Aladdin.", ["Heat", "The Lion King", "Se7en", "Casino", "Twister"]),
            ("My favourites are Alien and The Terminator; pick one for me.",
             ["Aliens", "Babe", "Star Wars", "Sense and Sensibility", "The Terminator 2"]),
            ("Recommend a comedy.", ["Clueless", "Clerks", "Friday", "The Birdcage", "Fargo"])]
    cases = []
    for text, titles in asks:
        user = text + " Choose one of: " + ", ".join(titles) + ". Answer with the title only."
        chat = tok.apply_chat_template([{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True)
        ids = tok(chat, add_special_tokens=False).input_ids
        answers = [tok(t + "<|im_end|>", add_special_tokens=False).input_ids for t in titles]
        cases.append({"input_ids": ids, "answers": answers, "titles": titles})
    write(os.path.join(out, "smollm.json"), model, cases, eos=eos, pad=2, max_new=12)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--gguf", default="", help="SmolLM2-135M-Instruct GGUF file (adds smollm.json)")
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    tiny(a.out)
    if a.gguf:
        if not os.path.isfile(a.gguf):
            raise SystemExit(f"error: {a.gguf}: no such file (run ./scripts/setup.sh)")
        smollm(a.gguf, a.out)
    print(f"wrote constrained-generation references to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
