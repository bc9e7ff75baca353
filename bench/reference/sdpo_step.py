#!/usr/bin/env python3
"""Reference CPU timing of one S-DPO step with torch + transformers + PEFT, as TRL's DPO trainers run it
(their concatenated forward: every chosen and rejected answer a row of its own, prompt + answer), on the
batch `sbtrec-bench-sbtrec sdpo-step --dump DIR` wrote (real MovieLens hybrid prompts, each with its
target's answer and k other candidates'): HDSD + MBSR and the RAM-Aligners write the slot rows, the
policy (codebooks, aligners, LoRA r 8 on all seven projections) scores the B x (1 + k) rows with
gradient, a frozen reference (its own copy) without, S-DPO's loss
-log sigmoid(-log sum_j exp(beta (r_j - r_0))), backward and Adam over the three groups. Prints one
JSON line with seconds_per_step.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import warnings

import torch

import peft
import transformers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtrec_step import hdsd_mbsr, setup, time_steps  # noqa: E402

transformers.utils.logging.set_verbosity_error()
warnings.filterwarnings("ignore", category=FutureWarning)


def main(argv: list[str] | None = None) -> int:
    args, t, meta, base, model = setup(argv, __doc__, "sdpo-step", "sdpo.safetensors")
    reference = copy.deepcopy(model).eval().requires_grad_(False)
    model.train()
    E = base.config.hidden_size
    H = int(meta["aligner_hidden"])

    def aligner(d: int) -> torch.nn.Sequential:
        return torch.nn.Sequential(torch.nn.Linear(d, H), torch.nn.GELU(), torch.nn.Linear(H, E))

    items, users = t["item_vectors"], t.get("user_vectors")
    # The reference starts as the policy's exact copy (codebooks, aligners, LoRA), frozen.
    books = {k: torch.nn.Parameter(t[k].clone()) for k in ("codebooks", "user_codebooks") if k in t}
    al = {"items": aligner(items.shape[1]), "user": aligner(users.shape[1]) if users is not None else None}
    ref_books = {k: torch.nn.Parameter(v.detach().clone(), requires_grad=False) for k, v in books.items()}
    ref_al = {k: copy.deepcopy(m).requires_grad_(False) if m else None for k, m in al.items()}
    side = {"policy": (books, al), "reference": (ref_books, ref_al)}
    lr, beta = float(meta["lr"]), float(meta["beta"])
    opt = torch.optim.Adam([{"params": list(books.values()), "lr": lr},
                            {"params": [p for m in al.values() if m for p in m.parameters()], "lr": lr, "weight_decay": 1e-5},
                            {"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}], lr=lr)

    # Every (prompt, answer) pair a row: the prompt's real tokens, the answer, right padding.
    ids, mask = t["input_ids"], t["attention_mask"]
    lengths = t["answer_lengths"]  # [B, J]
    B, J = lengths.shape
    flat = t["answer_ids"].tolist()
    rows, spans, at = [], [], 0
    for b in range(B):
        p = ids[b, : int(mask[b].sum())].tolist()
        for j in range(J):
            n = int(lengths[b, j])
            rows.append(p + flat[at:at + n])
            spans.append((len(p), n))
            at += n
    T = max(len(r) for r in rows)
    full = torch.tensor([r + [0] * (T - len(r)) for r in rows])
    full_mask = torch.tensor([[1] * len(r) + [0] * (T - len(r)) for r in rows])
    sb, sp, sk, si = t["slot_batch"], t["slot_position"], t["slot_kind"], t["slot_item"]
    row_of = torch.arange(B * J).view(B, J)

    def logps(m, books, al) -> torch.Tensor:
        x = m.get_input_embeddings()(full)
        for kind, src, key in (("items", items, "codebooks"), ("user", users, "user_codebooks")):
            sel = (sk == 2) if kind == "user" else (sk != 2)
            at_ = sel.nonzero().squeeze(1)
            if at_.numel() == 0:
                continue
            b_ = sb.index_select(0, at_)
            v = src.index_select(0, b_ if kind == "user" else si.index_select(0, at_))
            e = al[kind](hdsd_mbsr(v, books[key]) if key in books else v)          # [S, E]
            r_ = row_of.index_select(0, b_).reshape(-1)                           # [S * J]
            x = x.index_put((r_, sp.index_select(0, at_).repeat_interleave(J)), e.repeat_interleave(J, 0))
        logits = m(inputs_embeds=x, attention_mask=full_mask).logits.float()        # [B * J, T, V]
        out = []
        for r_, (p, n) in enumerate(spans):
            lp = torch.log_softmax(logits[r_, p - 1:p + n - 1], -1)
            out.append(lp.gather(1, full[r_, p:p + n, None]).sum())
        return torch.stack(out).view(B, J)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        pi = logps(model, *side["policy"])
        with torch.no_grad():
            ref = logps(reference, *side["reference"])
        r = pi - ref
        loss = -torch.nn.functional.logsigmoid(-torch.logsumexp(beta * (r[:, 1:] - r[:, :1]), 1)).mean()
        loss.backward()
        opt.step()
        return loss.item()

    per_step, loss = time_steps(step, args)
    print(json.dumps({"impl": "torch+transformers+peft", "bench": "sdpo_step", "seconds_per_step": per_step,
                      "loss": loss, "batch": B, "negatives": J - 1, "rows": B * J, "row_tokens": int(full_mask.sum()),
                      "threads": args.threads, "torch": torch.__version__, "transformers": transformers.__version__,
                      "peft": peft.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
