#!/usr/bin/env python3
"""Reference CPU timing of one SBT-Rec SBS-AO step with torch + transformers + PEFT, on the batch
`sbtrec-bench-sbtrec step --dump DIR` wrote (real MovieLens hybrid prompts): HDSD (nearest code per
level, float64 distances as sbtrec computes them) and MBSR on the item and user vectors, RAM-Aligners
(Linear-GELU-Linear), the slot rows written into inputs_embeds, the LLM's loss on the answer tokens,
backward into codebooks, aligners and LoRA (r, alpha, dropout as dumped, all seven projections), and
Adam over the three groups. Prints one JSON line with seconds_per_step.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import torch

import peft
import transformers
from peft import LoraConfig, get_peft_model
from safetensors import safe_open
from transformers import LlamaForCausalLM

transformers.utils.logging.set_verbosity_error()
warnings.filterwarnings("ignore", category=FutureWarning)
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def load(path: str) -> tuple[dict, dict]:
    with safe_open(path, "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def hdsd_mbsr(x: torch.Tensor, books: torch.Tensor) -> torch.Tensor:
    """Per level the nearest code of the residual (no grad), e_rq = sum of the chosen rows (grad to them)."""
    residual = x
    e = torch.zeros_like(x)
    for level in range(books.shape[0]):
        with torch.no_grad():
            idx = torch.cdist(residual.double(), books[level].double()).argmin(dim=1)
        chosen = books[level].index_select(0, idx)
        e = e + chosen
        residual = residual - chosen.detach()
    return e


def setup(argv: list[str] | None, doc: str, dump: str, file: str):
    """The timing scripts' arguments (--model, --inputs, --threads, --steps, --warmup), the dumped tensors
    and metadata of `file` in --inputs, and the LLM with the three slot rows and a fresh LoRA (r, alpha,
    dropout as dumped, all seven projections)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--model", required=True, help="Hugging Face directory of the same LLM")
    ap.add_argument("--inputs", required=True, help=f"directory sbtrec-bench-sbtrec {dump} --dump wrote")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t, meta = load(args.inputs + "/" + file)
    base = LlamaForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation="sdpa")
    base.resize_token_embeddings(base.config.vocab_size + 3, mean_resizing=True)  # the three slot tokens
    model = get_peft_model(base, LoraConfig(r=int(meta["lora_r"]), lora_alpha=float(meta["lora_alpha"]),
                                            lora_dropout=float(meta["lora_dropout"]), target_modules=TARGETS,
                                            bias="none", task_type="CAUSAL_LM"))
    return args, t, meta, base, model


def time_steps(step, args) -> tuple[float, float]:
    """args.warmup untimed calls of step(), then the mean seconds of args.steps timed ones, and the last loss."""
    for _ in range(args.warmup):
        step()
    t0 = time.perf_counter()
    loss = float("nan")
    for _ in range(args.steps):
        loss = step()
    return (time.perf_counter() - t0) / args.steps, loss


def main(argv: list[str] | None = None) -> int:
    args, t, meta, base, model = setup(argv, __doc__, "step", "step.safetensors")
    model.train()
    E = base.config.hidden_size
    H = int(meta["aligner_hidden"])

    def aligner(d: int) -> torch.nn.Sequential:
        return torch.nn.Sequential(torch.nn.Linear(d, H), torch.nn.GELU(), torch.nn.Linear(H, E))

    items = t["item_vectors"]
    users = t.get("user_vectors")
    item_books = torch.nn.Parameter(t["codebooks"].clone()) if "codebooks" in t else None
    user_books = torch.nn.Parameter(t["user_codebooks"].clone()) if "user_codebooks" in t else None
    item_aligner = aligner(items.shape[1])
    user_aligner = aligner(users.shape[1]) if users is not None else None
    lr = float(meta["lr"])
    groups = []
    books = [p for p in (item_books, user_books) if p is not None]
    if books:
        groups.append({"params": books, "lr": lr})
    groups.append({"params": list(item_aligner.parameters()) + (list(user_aligner.parameters()) if user_aligner else []),
                   "lr": lr, "weight_decay": 1e-5})
    groups.append({"params": [p for p in model.parameters() if p.requires_grad], "lr": lr})
    opt = torch.optim.Adam(groups, lr=lr)

    ids, mask, labels = t["input_ids"], t["attention_mask"], t["labels"]
    sb, sp, sk, si = t["slot_batch"], t["slot_position"], t["slot_kind"], t["slot_item"]
    is_user = sk == 2  # prompt::SlotKind::kUser
    item_at, user_at = (~is_user).nonzero().squeeze(1), is_user.nonzero().squeeze(1)
    embed = model.get_input_embeddings()

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        x = embed(ids)
        if item_at.numel():
            v = items.index_select(0, si.index_select(0, item_at))
            e = hdsd_mbsr(v, item_books) if item_books is not None else v
            x = x.index_put((sb.index_select(0, item_at), sp.index_select(0, item_at)), item_aligner(e))
        if user_at.numel():
            rows = sb.index_select(0, user_at)
            v = users.index_select(0, rows)
            e = hdsd_mbsr(v, user_books) if user_books is not None else v
            x = x.index_put((rows, sp.index_select(0, user_at)), user_aligner(e))
        loss = model(inputs_embeds=x, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        return loss.item()

    per_step, loss = time_steps(step, args)
    tokens = int(mask.sum())
    print(json.dumps({"impl": "torch+transformers+peft", "bench": "sbtrec_step", "seconds_per_step": per_step,
                      "loss": loss, "batch": int(ids.shape[0]), "tokens": tokens, "tokens_per_s": tokens / per_step,
                      "threads": args.threads, "torch": torch.__version__, "transformers": transformers.__version__,
                      "peft": peft.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
