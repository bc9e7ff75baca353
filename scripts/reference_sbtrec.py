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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="directory written by the C++ test")
    args = ap.parse_args(argv)

    import torch
    from peft import PeftModel
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.use_deterministic_algorithms(True)
    spec = json.load(open(os.path.join(args.dir, "cases.json"), encoding="utf-8"))
    d, f = os.path.split(spec["tokenizer"])
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    tok.add_special_tokens({"additional_special_tokens": ["[HistoryEmb]", "[CansEmb]", "[UserEmb]"]})
    slot_id = {k: tok.convert_tokens_to_ids(k) for k in ("[HistoryEmb]", "[CansEmb]", "[UserEmb]")}

    t = load_file(os.path.join(args.dir, "sbtrec.safetensors"))
    model = AutoModelForCausalLM.from_pretrained(os.path.join(args.dir, "model"), dtype=torch.float32)
    model = PeftModel.from_pretrained(model, os.path.join(args.dir, "adapter"), is_trainable=True)
    model.train()  # lora_dropout is 0

    codebooks = {"items": torch.nn.Parameter(t["codebooks"].clone())}
    if "user_codebooks" in t:
        codebooks["user"] = torch.nn.Parameter(t["user_codebooks"].clone())

    def aligner(prefix):
        w0, b0 = t[prefix + ".mlp_proj.0.weight"], t[prefix + ".mlp_proj.0.bias"]
        w2, b2 = t[prefix + ".mlp_proj.2.weight"], t[prefix + ".mlp_proj.2.bias"]
        m = torch.nn.Sequential(torch.nn.Linear(w0.shape[1], w0.shape[0]), torch.nn.GELU(),
                                torch.nn.Linear(w2.shape[1], w2.shape[0]))
        with torch.no_grad():
            m[0].weight.copy_(w0), m[0].bias.copy_(b0), m[2].weight.copy_(w2), m[2].bias.copy_(b2)
        return m

    aligners = {"items": aligner("item_aligner")}
    if spec["user_token"]:
        aligners["user"] = aligner("user_aligner")

    def mbsr(x, cb):
        """HDSD codes of x [S, D] (float64 argmin per level, first index on ties), e_rq = sum of rows."""
        r = x.double()
        e = torch.zeros(x.shape, dtype=cb.dtype)
        for level in range(cb.shape[0]):
            dist = ((r[:, None, :] - cb[level].detach().double()[None]) ** 2).sum(-1)
            idx = dist.argmin(1)
            r = r - cb[level].detach().double()[idx]
            e = e + cb[level][idx]
        return e

    out = {}

    def prompt_ids(c):
        """The prompt's ids and its slots (position, kind, item id or None for the user)."""
        tmpl = spec["templates"][c["template"]]
        h = ", ".join(x + " [HistoryEmb]" for x in c["history"]) + (" [UserEmb]" if spec["user_token"] else "")
        cans = ", ".join(x + " [CansEmb]" for x in c["candidates"])
        text = tmpl.replace("{history}", h).replace("{candidates}", cans).replace("{num_candidates}", str(len(c["candidates"])))
        p = tok(text, add_special_tokens=True).input_ids
        hist, cand, found = iter(c["history_items"]), iter(c["candidate_items"]), []
        for pos, tid in enumerate(p):
            if tid == slot_id["[HistoryEmb]"]:
                found.append((pos, "items", next(hist)))
            elif tid == slot_id["[CansEmb]"]:
                found.append((pos, "items", next(cand)))
            elif tid == slot_id["[UserEmb]"]:
                found.append((pos, "user", None))
        return p, found

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
        p, found = prompt_ids(c)
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
        p, found = prompt_ids(c)
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
    for kind, cb in codebooks.items():
        out["grad.codebooks." + kind] = cb.grad.clone()
    for kind, m in aligners.items():
        for n, prm in m.named_parameters():
            out[f"grad.{'item' if kind == 'items' else 'user'}_aligner.mlp_proj.{n}"] = prm.grad.clone()
    for n, prm in model.named_parameters():
        if "lora_" in n:
            out["grad." + n.replace("base_model.model.", "").replace(".default.weight", ".weight")] = prm.grad.clone()
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(args.dir, "reference.safetensors"))
    print(f"reference_sbtrec: loss {loss.item():.6f}, {len(slots)} slots, wrote {args.dir}/reference.safetensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
