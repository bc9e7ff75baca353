"""Pieces the Python references of SBT-Rec share (reference_sbtrec.py: one SBS-AO step; reference_sdpo.py:
one S-DPO step), written independently of sbtrec's C++: the tokenizer with the slot tokens, the prompt
built with str.replace as LLaRA's collater builds it, HDSD as a float64 argmin per level with MBSR's sum
of codebook rows, and the RAM-Aligner as nn.Sequential(Linear, GELU, Linear)."""
import os

SLOTS = ("[HistoryEmb]", "[CansEmb]", "[UserEmb]")


def slot_tokenizer(gguf):
    """SmolLM2's tokenizer from its GGUF file with the three slot tokens added; and their ids."""
    from transformers import AutoTokenizer
    d, f = os.path.split(gguf)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    tok.add_special_tokens({"additional_special_tokens": list(SLOTS)})
    return tok, {k: tok.convert_tokens_to_ids(k) for k in SLOTS}


def load_aligner(t, prefix, trainable=True):
    """The RAM-Aligner whose weights are t[prefix + ".mlp_proj.{0,2}.{weight,bias}"]."""
    import torch
    w0, b0 = t[prefix + ".mlp_proj.0.weight"], t[prefix + ".mlp_proj.0.bias"]
    w2, b2 = t[prefix + ".mlp_proj.2.weight"], t[prefix + ".mlp_proj.2.bias"]
    m = torch.nn.Sequential(torch.nn.Linear(w0.shape[1], w0.shape[0]), torch.nn.GELU(),
                            torch.nn.Linear(w2.shape[1], w2.shape[0]))
    with torch.no_grad():
        m[0].weight.copy_(w0), m[0].bias.copy_(b0), m[2].weight.copy_(w2), m[2].bias.copy_(b2)
    m.requires_grad_(trainable)
    return m


def mbsr(x, cb):
    """HDSD codes of x [S, D] (float64 argmin per level, first index on ties), e_rq = sum of rows."""
    import torch
    r = x.double()
    e = torch.zeros(x.shape, dtype=cb.dtype)
    for level in range(cb.shape[0]):
        dist = ((r[:, None, :] - cb[level].detach().double()[None]) ** 2).sum(-1)
        idx = dist.argmin(1)
        r = r - cb[level].detach().double()[idx]
        e = e + cb[level][idx]
    return e


def prompt_ids(tok, slot_id, spec, c):
    """Case c's prompt ids and its slots (position, kind "items" / "user", item id or None for the user)."""
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


def gradients(codebooks, aligners, model):
    """The gradients the C++ parity tests compare, by their sbtrec names: grad.codebooks.<kind>,
    grad.<item|user>_aligner.mlp_proj.*, and grad.<module>.lora_A/B.weight of every LoRA parameter."""
    out = {}
    for kind, cb in codebooks.items():
        out["grad.codebooks." + kind] = cb.grad.clone()
    for kind, m in aligners.items():
        if m is None:
            continue
        for n, prm in m.named_parameters():
            out[f"grad.{'item' if kind == 'items' else 'user'}_aligner.mlp_proj.{n}"] = prm.grad.clone()
    for n, prm in model.named_parameters():
        if "lora_" in n:
            out["grad." + n.replace("base_model.model.", "").replace(".default.weight", ".weight")] = prm.grad.clone()
    return out
