#!/usr/bin/env python3
"""SBT-Rec's training step written again with torch + transformers + PEFT, as the reference the C++
trainer is checked against (tests/train/sbtrec_parity_test.cpp).

Reads a directory the C++ test writes:
  model/        Hugging Face Llama directory (config.json + model.safetensors), slot rows included
  adapter/      PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors)
  sbtrec.safetensors  item_vectors [N, D], user_vectors [B, Z], codebooks [L, K, D], user_codebooks
                [L, K, Z], item_aligner.* / user_aligner.* (mlp_proj.0 / mlp_proj.2 weights and biases)
  cases.json    {"tokenizer": GGUF file, "templates": [...], "cases": [{"template", "history",
                "candidates", "target"} with titles and item ids], "user_token": bool}
and writes reference.safetensors beside them: per case the prompt and answer ids, the loss, and the
gradients of the codebooks, the aligners and every LoRA A/B.

Independent of sbtrec's code: the prompt is built with str.replace as LLaRA's collater builds it
(titles joined by ", ", each followed by " [HistoryEmb]" / " [CansEmb]", " [UserEmb]" after the
history), HDSD is a float64 argmin per level, MBSR a sum of codebook rows, the RAM-Aligner
nn.Sequential(Linear, GELU, Linear).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_common import gradients, load_aligner, mbsr, prompt_ids, slot_tokenizer  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="directory written by the C++ test")
    args = ap.parse_args(argv)

    import torch
    from peft import PeftModel
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM

    torch.use_deterministic_algorithms(True)
    spec = json.load(open(os.path.join(args.dir, "cases.json"), encoding="utf-8"))
    tok, slot_id = slot_tokenizer(spec["tokenizer"])

    t = load_file(os.path.join(args.dir, "sbtrec.safetensors"))
    model = AutoModelForCausalLM.from_pretrained(os.path.join(args.dir, "model"), dtype=torch.float32)
    model = PeftModel.from_pretrained(model, os.path.join(args.dir, "adapter"), is_trainable=True)
    model.train()  # lora_dropout is 0

    codebooks = {"items": torch.nn.Parameter(t["codebooks"].clone())}
    if "user_codebooks" in t:
        codebooks["user"] = torch.nn.Parameter(t["user_codebooks"].clone())

    aligners = {"items": load_aligner(t, "item_aligner")}
    if spec["user_token"]:
        aligners["user"] = load_aligner(t, "user_aligner")

    out = {}

    def embed(ids, slots):
        """Token embeddings [B, T, E] with each slot (row, position, kind, vector row) replaced."""
        embeds = model.get_input_embeddings()(ids)
        for kind in ("items", "user"):
            sel = [s for s in slots if s[2] == kind]
            if not sel:
                continue
            src = t["item_vectors"] if kind == "items" else t["user_vectors"]
            x = src[torch.tensor([s[3] for s in sel])]
            e = mbsr(x, codebooks[kind]) if kind in codebooks else x
            embeds = embeds.index_put((torch.tensor([s[0] for s in sel]), torch.tensor([s[1] for s in sel])), aligners[kind](e))
        return embeds

    # Greedy generation from each generation case's prompt alone, left-padded, as evaluation runs it.
    model.eval()
    gen_rows, gen_slots = [], []
    for i, c in enumerate(spec.get("generation_cases", [])):
        p, found = prompt_ids(tok, slot_id, spec, c)
        gen_rows.append(p)
        gen_slots += [(i, pos, kind, i if kind == "user" else item) for pos, kind, item in found]
    if gen_rows:
        T = max(len(r) for r in gen_rows)
        ids = torch.tensor([[0] * (T - len(r)) + r for r in gen_rows])
        mask = torch.tensor([[0] * (T - len(r)) + [1] * len(r) for r in gen_rows])
        gen_slots = [(b, pos + T - len(gen_rows[b]), kind, row) for b, pos, kind, row in gen_slots]
        model.generation_config.eos_token_id = None
        with torch.no_grad():
            new = model.generate(inputs_embeds=embed(ids, gen_slots), attention_mask=mask, max_new_tokens=spec["max_new_tokens"],
                                 do_sample=False, num_beams=1, pad_token_id=0, suppress_tokens=list(slot_id.values()))
        out["generated_ids"] = new.contiguous()
    model.train()

    rows, labels, slots = [], [], []
    for i, c in enumerate(spec["cases"]):
        p, found = prompt_ids(tok, slot_id, spec, c)
        a = tok(c["target"] + "\n", add_special_tokens=False).input_ids
        out[f"case{i}.prompt_ids"] = torch.tensor(p, dtype=torch.int64)
        out[f"case{i}.answer_ids"] = torch.tensor(a, dtype=torch.int64)
        rows.append(p + a)
        labels.append([-100] * len(p) + a)
        slots += [(i, pos, kind, i if kind == "user" else item) for pos, kind, item in found]
    T = max(len(r) for r in rows)
    pad = 0
    ids = torch.tensor([r + [pad] * (T - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (T - len(r)) for r in rows])
    lab = torch.tensor([r + [-100] * (T - len(r)) for r in labels])

    embeds = embed(ids, slots)  # [B, T, E]
    loss = model(inputs_embeds=embeds, attention_mask=mask, labels=lab).loss
    loss.backward()
    out["loss"] = loss.detach().reshape(1)
    out.update(gradients(codebooks, aligners, model))
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(args.dir, "reference.safetensors"))
    print(f"reference_sbtrec: loss {loss.item():.6f}, {len(slots)} slots, wrote {args.dir}/reference.safetensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
