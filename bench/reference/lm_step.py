#!/usr/bin/env python3
"""Reference CPU timing of LoRA fine-tuning steps (forward + backward + AdamW) of a small random Llama with
transformers + PEFT, for speed comparison with sbtrec's C++ Llama/LoRA trainer on the same shapes and thread count.
Prints one JSON line: impl, steps, seconds_per_step, tokens_per_s, final_loss, threads, versions, config.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import torch

try:
    import peft
    import transformers
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM
except ImportError as e:  # pragma: no cover - depends on the environment
    raise SystemExit(f"error: {e}; install the parity requirements: "
                     f".venv/bin/pip install -r scripts/requirements-parity.txt") from None

transformers.utils.logging.set_verbosity_error()
warnings.filterwarnings("ignore", category=FutureWarning)  # PEFT calls an API transformers 5 marks deprecated

# The benchmark model; the C++ side builds the same shapes (weights are random on both sides, not shared).
BENCH_MODEL = dict(num_hidden_layers=8, hidden_size=512, intermediate_size=1376, num_attention_heads=8,
                   num_key_value_heads=8, vocab_size=32000, max_position_embeddings=2048, rms_norm_eps=1e-5,
                   rope_theta=10000.0, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=0)
# Llama-2-7B's shape, for the GPU benchmark (scripts/device/bench_7b.sh).
LLAMA2_7B = dict(num_hidden_layers=32, hidden_size=4096, intermediate_size=11008, num_attention_heads=32,
                 num_key_value_heads=32, vocab_size=32000)
LORA = dict(r=8, lora_alpha=32, lora_dropout=0.1,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])


def add_shape_flags(ap: argparse.ArgumentParser) -> None:
    # Hidden: shrink the model for smoke tests of the script itself; reported numbers use the defaults.
    ap.add_argument("--layers", type=int, default=BENCH_MODEL["num_hidden_layers"], help=argparse.SUPPRESS)
    ap.add_argument("--hidden", type=int, default=BENCH_MODEL["hidden_size"], help=argparse.SUPPRESS)
    ap.add_argument("--intermediate", type=int, default=BENCH_MODEL["intermediate_size"], help=argparse.SUPPRESS)
    ap.add_argument("--vocab", type=int, default=BENCH_MODEL["vocab_size"], help=argparse.SUPPRESS)


def build_model(args: argparse.Namespace, seed: int) -> tuple[LlamaForCausalLM, dict]:
    if getattr(args, "model", ""):
        return load_model(args)
    cfg = dict(BENCH_MODEL, num_hidden_layers=args.layers, hidden_size=args.hidden,
               intermediate_size=args.intermediate, vocab_size=args.vocab)
    if getattr(args, "preset", "small") == "7b":
        cfg.update(LLAMA2_7B)
    device = getattr(args, "device", "cpu")
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[getattr(args, "dtype", "fp32")]
    if min(args.layers, args.hidden, args.intermediate, args.vocab) < 1 or args.hidden % cfg["num_attention_heads"]:
        raise SystemExit(f"error: bad model shape {cfg}; hidden must be a multiple of "
                         f"{cfg['num_attention_heads']} heads")
    torch.manual_seed(seed)
    with torch.device(device):  # random init directly on the target device
        model = LlamaForCausalLM._from_config(LlamaConfig(**cfg), attn_implementation="sdpa", dtype=dtype)
    return model, dict(cfg, attn_implementation="sdpa", dtype=str(dtype).replace("torch.", ""))


def load_model(args: argparse.Namespace) -> tuple[LlamaForCausalLM, dict]:
    """Real weights from a Hugging Face directory (bench/smollm_*.sh convert the GGUF once with transformers)."""
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[getattr(args, "dtype", "fp32")]
    model = LlamaForCausalLM.from_pretrained(args.model, dtype=dtype, attn_implementation="sdpa")
    model.to(getattr(args, "device", "cpu"))
    c = model.config
    return model, dict(model=args.model, num_hidden_layers=c.num_hidden_layers, hidden_size=c.hidden_size,
                       vocab_size=c.vocab_size, pad_token_id=c.pad_token_id if c.pad_token_id is not None else 0,
                       attn_implementation="sdpa", dtype=str(dtype).replace("torch.", ""))


def add_model_flag(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--model", default="", help="Hugging Face model directory (real weights) instead of the random model")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--steps", type=int, default=3, help="timed training steps")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first (allocator, AdamW state)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", choices=["small", "7b"], default="small", help="model shape")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--label-tokens", type=int, default=0, help="labels only on the last N tokens of each row (0 = all)")
    add_model_flag(ap)
    add_shape_flags(ap)
    args = ap.parse_args(argv)
    if args.threads < 1 or args.steps < 1 or args.warmup < 0 or args.batch < 1 or args.seq < 2:
        ap.error("--threads >= 1, --steps >= 1, --warmup >= 0, --batch >= 1 and --seq >= 2 required")
    torch.set_num_threads(args.threads)

    base, cfg = build_model(args, args.seed)
    model = get_peft_model(base, LoraConfig(bias="none", task_type="CAUSAL_LM", **LORA))
    model.train()  # LoRA dropout 0.1 is active, as in fine-tuning
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    gen = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, cfg["vocab_size"], (args.batch, args.seq), generator=gen).to(args.device)
    labels = ids.clone()
    if args.label_tokens > 0:
        labels[:, :max(0, args.seq - args.label_tokens)] = -100
    cuda = args.device.startswith("cuda")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(args.warmup):
        step()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    loss = float("nan")
    sync()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    sync()
    per_step = (time.perf_counter() - t0) / args.steps
    print(json.dumps({"impl": "transformers+peft", "steps": args.steps, "seconds_per_step": per_step,
                      "tokens_per_s": args.batch * args.seq / per_step, "final_loss": loss, "batch": args.batch,
                      "seq": args.seq, "label_tokens": args.label_tokens, "threads": args.threads, "torch": torch.__version__,
                      "transformers": transformers.__version__, "peft": peft.__version__,
                      "trainable_params": sum(p.numel() for p in params), "device": args.device,
                      "peak_memory_bytes": torch.cuda.max_memory_allocated() if cuda else None,
                      "config": dict(cfg, lora=LORA, optimizer="AdamW lr 1e-4")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
