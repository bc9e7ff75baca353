#!/usr/bin/env python3
"""Reference CPU timing of SBT-Rec's evaluation by generation with transformers + PEFT: batched
`generate(inputs_embeds=..., attention_mask=...)` (greedy or beam as dumped, EOS stops, the added slot
tokens suppressed, LoRA unmerged as during training) on the left-padded hybrid-prompt embeddings
`sbtrec-bench-sbtrec generate --dump DIR` wrote, one tensor per batch. Prints one JSON line with
cases_per_s (the C++ side also detokenises and matches titles, which costs well under 1% of a case).
--precision: fp32 (float32 weights), autocast-bf16 (float32 weights, torch.autocast's bf16 matrix
products: the counterpart of sbtrec's llm.gemm_dtype=bf16) or bf16 (bfloat16 weights throughout).
"""

from __future__ import annotations

import argparse
import contextlib
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
warnings.filterwarnings("ignore")
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="Hugging Face directory of the same LLM")
    ap.add_argument("--inputs", required=True, help="directory sbtrec-bench-sbtrec generate --dump wrote")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", choices=["fp32", "autocast-bf16", "bf16"], default="fp32")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    with safe_open(args.inputs + "/generate.safetensors", "pt") as f:
        meta = f.metadata()
        t = {k: f.get_tensor(k) for k in f.keys()}
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    base = LlamaForCausalLM.from_pretrained(args.model, dtype=dtype, attn_implementation="sdpa")
    base.resize_token_embeddings(base.config.vocab_size + 3, mean_resizing=True)
    model = get_peft_model(base, LoraConfig(r=int(meta["lora_r"]), lora_alpha=float(meta["lora_alpha"]),
                                            target_modules=TARGETS, bias="none", task_type="CAUSAL_LM"))
    model.eval()
    eos = [int(x) for x in meta["eos"].split(",") if x]
    suppress = [int(x) for x in meta["suppress"].split(",") if x]
    batches = sorted(int(k.split(".")[1]) for k in t if k.startswith("embeds."))
    cases = 0
    t0 = time.perf_counter()
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if args.precision == "autocast-bf16"
                else contextlib.nullcontext())
    with torch.no_grad(), autocast:
        for k in batches:
            emb, mask = t[f"embeds.{k}"].to(dtype), t[f"mask.{k}"]
            model.generate(inputs_embeds=emb, attention_mask=mask, max_new_tokens=int(meta["max_new_tokens"]),
                                 num_beams=int(meta["num_beams"]), do_sample=False, eos_token_id=eos,
                                 pad_token_id=int(meta["pad"]), suppress_tokens=suppress or None)
            cases += emb.shape[0]
    sec = time.perf_counter() - t0
    print(json.dumps({"impl": "transformers+peft", "bench": "sbtrec_generate", "cases": cases, "seconds": sec,
                      "cases_per_s": cases / sec, "threads": args.threads, "precision": args.precision, "torch": torch.__version__,
                      "transformers": transformers.__version__, "peft": peft.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
