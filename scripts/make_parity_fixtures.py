#!/usr/bin/env python3
"""Reference numbers from Hugging Face transformers + PEFT for sbtrec's C++ Llama/LoRA parity tests: tiny random
Llama checkpoints with their logits, loss, LoRA gradients, the gradient of the loss with respect to inputs_embeds (with
and without gradient checkpointing), greedy/beam generations from ids and from left-padded embeddings of different
lengths (also with suppressed tokens) and a rank-stabilised (use_rslora) adapter (default mode), PEFT logits for an
adapter exported by sbtrec (`peft-logits`), and a greedy continuation of a converted llama2.c model (`stories`).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
import warnings
from typing import NoReturn

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtrec_io import atomic_write, atomic_write_dir  # noqa: E402

try:
    import peft
    import transformers
    from peft import LoraConfig, PeftModel, get_peft_model
    from safetensors.torch import load_file, save_file
    from transformers import LlamaConfig, LlamaForCausalLM, LogitsProcessor, LogitsProcessorList
except ImportError as e:  # pragma: no cover - depends on the environment
    raise SystemExit(f"error: {e}; install the parity requirements: "
                     f".venv/bin/pip install -r scripts/requirements-parity.txt") from None

transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
# PEFT calls a transformers API that transformers 5 marks deprecated; the warning is noise here.
warnings.filterwarnings("ignore", category=FutureWarning)

# Tiny checkpoints: each exercises a different head layout (MHA, GQA with tied embeddings, MQA with odd sizes).
CASES: dict[str, dict] = {
    "mha": dict(hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=4, vocab_size=320, tie_word_embeddings=False, rope_theta=10000.0,
                rms_norm_eps=1e-6),
    "gqa": dict(hidden_size=96, intermediate_size=200, num_hidden_layers=2, num_attention_heads=6,
                num_key_value_heads=2, vocab_size=257, tie_word_embeddings=True, rope_theta=500000.0,
                rms_norm_eps=1e-5),
    "odd": dict(hidden_size=72, intermediate_size=130, num_hidden_layers=3, num_attention_heads=3,
                num_key_value_heads=1, vocab_size=301, tie_word_embeddings=False, rope_theta=1234.5,
                rms_norm_eps=1e-5),
}
# Seeds picked by scanning: every greedy step has a top-1/top-2 logit gap >= MIN_GAP, all generations survive
# the jitter check below, and beam search with EOS on finishes early (so beam_eos_ids tests finished hypotheses).
CASE_SEEDS = {"mha": 72, "gqa": 18, "odd": 104}
COMMON = dict(max_position_embeddings=128, bos_token_id=1, eos_token_id=2, pad_token_id=0)

BATCH, SEQ, PAD_LEN, UNLABELED = 2, 12, 3, 6
# Generation from embeddings: one prompt per row, each of a different length, left-padded to the longest.
EMBED_PROMPT_LENS, EMBED_NEW, EMBED_BEAMS = (8, 5, 3), 8, 3
# Seeds of the embeddings' noise, picked by scanning like CASE_SEEDS (their own generator, so the other fixtures'
# values do not move with them).
EMBED_SEEDS = {"mha": 2, "gqa": 3, "odd": 2}
GREEDY_NEW, BATCH_NEW, BEAM_EOS_WIDTH = 20, 10, 32
# Score noise a generated fixture must survive: far above float32 rounding of logits of size ~10 (~1e-5).
JITTER, JITTER_DRAWS = 1e-3, 3
MIN_GAP = 0.02
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# Whole-model sizes here are ~0.8 MB for `gqa`; 200 kB shards give 4-5 files (>= 3 wanted).
SHARD_SIZE = "200KB"

# generate() normally stops a row at eos_token_id. Passing eos_token_id=None to generate() overrides the
# model's generation_config (kwargs win), so exactly max_new_tokens are produced; the script also checks the length.
EOS_HANDLING = ("greedy_ids, beam_ids, batch_greedy_ids, embeds_*_ids, stories greedy_ids: generate(..., eos_token_id=None) "
                "so no EOS stopping criterion exists and exactly max_new_tokens tokens are generated "
                "(id 2 may appear and is kept going past); beam_eos_ids: eos_token_id=2 on, finished beams "
                "stop, result right-padded with -1 to width 32, true length in beam_eos_len")


def die(msg: str) -> NoReturn:
    raise SystemExit(f"error: {msg}")


def build_config(name: str) -> LlamaConfig:
    return LlamaConfig(**CASES[name], **COMMON)


@torch.no_grad()
def init_peaked(model: LlamaForCausalLM) -> None:
    """normal(0, 0.5) for embeddings/linears, uniform(0.5, 1.5) for RMSNorm gains: logits far from ties, so greedy and
    beam choices are stable under float32 rounding differences between implementations."""
    seen: set[int] = set()
    for mod in model.modules():
        if isinstance(mod, (torch.nn.Embedding, torch.nn.Linear)):
            if id(mod.weight) not in seen:  # tied lm_head shares the embedding: initialise once
                seen.add(id(mod.weight))
                mod.weight.normal_(0.0, 0.5)
            if getattr(mod, "bias", None) is not None:
                mod.bias.zero_()
        elif type(mod).__name__.endswith("RMSNorm"):
            mod.weight.uniform_(0.5, 1.5)


def make_model(config: LlamaConfig) -> LlamaForCausalLM:
    model = LlamaForCausalLM._from_config(config, attn_implementation="eager", dtype=torch.float32)
    init_peaked(model)
    return model.eval()


def left_position_ids(mask: torch.Tensor) -> torch.Tensor:
    # Same as generate()'s derivation for left padding: real tokens count 0, 1, ...; pads sit at position 0.
    return (mask.cumsum(-1) - 1).clamp(min=0)


def greedy_margin(scores: tuple[torch.Tensor, ...]) -> float:
    """Smallest top-1/top-2 logit gap over the greedy steps: how far the reference is from a near-tie."""
    gaps = []
    for s in scores:
        top = s.float().topk(2, dim=-1).values
        gaps.append((top[:, 0] - top[:, 1]).min().item())
    return min(gaps)


def peft_key(param_name: str, adapter: str = "default") -> str:
    # PEFT drops the adapter name when saving: ...q_proj.lora_A.default.weight -> ...q_proj.lora_A.weight
    return param_name.replace(f".{adapter}.", ".")


class _Jitter(LogitsProcessor):
    """Adds uniform noise of +-eps to the scores: a decision that flips under it is too close to call."""

    def __init__(self, eps: float, gen: torch.Generator):
        self.eps, self.gen = eps, gen

    def __call__(self, input_ids, scores):
        noise = torch.rand(scores.shape, generator=self.gen, dtype=scores.dtype) * 2 - 1
        return scores + self.eps * noise


def robust_generate(model, name: str, what: str, *args, **kwargs) -> torch.Tensor:
    """generate(), then check that +-JITTER noise on the scores (several draws) gives the same ids, so the C++
    side's float32 rounding cannot flip a greedy/beam choice."""
    ref = model.generate(*args, **kwargs)
    seq = ref.sequences if hasattr(ref, "sequences") else ref
    gen = torch.Generator().manual_seed(0)
    for _ in range(JITTER_DRAWS):
        kw = {k: v for k, v in kwargs.items() if k not in ("output_scores", "return_dict_in_generate")}
        got = model.generate(*args, logits_processor=LogitsProcessorList([_Jitter(JITTER, gen)]), **kw)
        if got.shape != seq.shape or not torch.equal(got, seq):
            raise NearTie(f"case {name}: {what} changes under +-{JITTER} score noise (near-tie)")
    return ref


class NearTie(RuntimeError):
    pass


def compute_case(name: str, seed: int):
    torch.manual_seed(seed)
    config = build_config(name)
    V = config.vocab_size
    model = make_model(config)

    # Inputs: row 0 unpadded; row 1 with 3 pad positions (left for `input_ids`, right for `right_*`).
    ids = torch.randint(3, V, (BATCH, SEQ), dtype=torch.long)
    mask = torch.ones(BATCH, SEQ, dtype=torch.long)
    mask[1, :PAD_LEN] = 0
    ids[1, :PAD_LEN] = config.pad_token_id
    pos = left_position_ids(mask)
    right_ids = ids.clone()
    right_ids[1] = torch.cat([ids[1, PAD_LEN:], torch.full((PAD_LEN,), config.pad_token_id)])
    right_mask = torch.ones(BATCH, SEQ, dtype=torch.long)
    right_mask[1, SEQ - PAD_LEN:] = 0
    labels = ids.clone()
    labels[:, :UNLABELED] = -100
    labels[mask == 0] = -100

    t: dict[str, torch.Tensor] = {"input_ids": ids, "attention_mask": mask, "position_ids": pos,
                                  "right_input_ids": right_ids, "right_attention_mask": right_mask,
                                  "labels": labels}
    with torch.no_grad():
        t["logits"] = model(ids, attention_mask=mask, position_ids=pos).logits
        t["right_logits"] = model(right_ids, attention_mask=right_mask).logits
        t["loss"] = model(ids, attention_mask=mask, position_ids=pos, labels=labels).loss

    # LoRA on a fresh copy; init_lora_weights=False leaves PEFT's nn.Linear default (kaiming) init for A and B.
    lora_cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=LORA_TARGETS, bias="none",
                          task_type="CAUSAL_LM", init_lora_weights=False)
    pmodel = get_peft_model(copy.deepcopy(model), lora_cfg)
    lora_params = {n: p for n, p in pmodel.named_parameters() if "lora_" in n}
    if not lora_params:
        die("PEFT created no LoRA parameters; check the target module names")
    with torch.no_grad():
        b_zero = [n for n, p in lora_params.items() if "lora_B" in n and not p.abs().max() > 0]
        if b_zero:  # fallback if a PEFT version zero-initialises B even with init_lora_weights=False
            for n, p in lora_params.items():
                if "lora_B" in n:
                    p.normal_(0.0, 0.1)
    pmodel.eval()
    out = pmodel(ids, attention_mask=mask, position_ids=pos, labels=labels)
    t["lora_logits"] = out.logits.detach()
    t["lora_loss"] = out.loss.detach()
    out.loss.backward()
    for n, p in lora_params.items():
        if p.grad is None:
            die(f"no gradient for {n}")
        t[f"grad.{peft_key(n)}"] = p.grad.detach().clone()
    if torch.allclose(t["lora_logits"], t["logits"]):
        die("LoRA logits equal the base logits: the adapter has no effect")

    # d loss / d inputs_embeds through the LoRA model, what the aligner and codebooks receive in SBT-Rec. The
    # embeddings are the tokens' rows plus noise (not rows of the table); row 1 is left-padded with its
    # attention_mask, and labels carry -100 on the prompt and on the padding.
    egen = torch.Generator().manual_seed(EMBED_SEEDS[name])
    with torch.no_grad():
        embeds = model.get_input_embeddings()(ids) + 0.1 * torch.randn(ids.shape + (config.hidden_size,), generator=egen)
    t["embeds"] = embeds
    inner = pmodel.base_model.model  # the LlamaForCausalLM PEFT wraps
    pmodel.train()  # transformers checkpoints only in training mode; lora_dropout 0 keeps it deterministic
    for suffix, checkpointing in (("", False), ("_checkpointed", True)):
        if checkpointing:
            inner.gradient_checkpointing_enable()
        else:
            inner.gradient_checkpointing_disable()
        if inner.model.gradient_checkpointing != checkpointing:
            die(f"case {name}: gradient checkpointing did not switch {'on' if checkpointing else 'off'}")
        pmodel.zero_grad(set_to_none=True)
        x = embeds.clone().requires_grad_(True)
        loss = pmodel(inputs_embeds=x, attention_mask=mask, position_ids=pos, labels=labels).loss
        loss.backward()
        t[f"embeds_loss{suffix}"] = loss.detach()
        t[f"embeds_grad{suffix}"] = x.grad.detach().clone()
    inner.gradient_checkpointing_disable()
    pmodel.zero_grad(set_to_none=True)
    pmodel.eval()
    if not t["embeds_grad"][mask == 0].abs().max() == 0:
        die(f"case {name}: padding embeddings received a gradient (the attention mask was not applied)")

    # Generation with the base model (eval, KV cache, greedy/beam).
    prompt = ids[:1]
    gen_common = dict(do_sample=False, use_cache=True, pad_token_id=config.pad_token_id)
    one = torch.ones_like(prompt)
    with torch.no_grad():
        g = robust_generate(model, name, "greedy_ids", prompt, attention_mask=one, max_new_tokens=GREEDY_NEW,
                            eos_token_id=None, output_scores=True, return_dict_in_generate=True, **gen_common)
        t["greedy_ids"] = g.sequences
        margin = greedy_margin(g.scores)
        t["beam_ids"] = robust_generate(model, name, "beam_ids", prompt, attention_mask=one,
                                        max_new_tokens=GREEDY_NEW, num_beams=3, length_penalty=1.0,
                                        early_stopping=False, num_return_sequences=1, eos_token_id=None,
                                        **gen_common)
        be = robust_generate(model, name, "beam_eos_ids", prompt, attention_mask=one, max_new_tokens=GREEDY_NEW,
                             num_beams=3, length_penalty=1.0, early_stopping=False, num_return_sequences=1,
                             eos_token_id=config.eos_token_id, **gen_common)
        bg = robust_generate(model, name, "batch_greedy_ids", ids, attention_mask=mask, max_new_tokens=BATCH_NEW,
                             eos_token_id=None, output_scores=True, return_dict_in_generate=True, **gen_common)
        t["batch_greedy_ids"] = bg.sequences
        margin = min(margin, greedy_margin(bg.scores))

        # Prompts given as embeddings, of different lengths, left-padded (pad rows hold noise that the mask must
        # hide). transformers returns only the new tokens when given inputs_embeds alone.
        P = max(EMBED_PROMPT_LENS)
        emask = torch.zeros(len(EMBED_PROMPT_LENS), P, dtype=torch.long)
        for row, n in enumerate(EMBED_PROMPT_LENS):
            emask[row, P - n:] = 1
        eids = torch.randint(3, V, emask.shape, generator=egen)
        eemb = model.get_input_embeddings()(eids) + 0.1 * torch.randn(eids.shape + (config.hidden_size,), generator=egen)
        eemb[emask == 0] = torch.randn(int((emask == 0).sum()), config.hidden_size, generator=egen)
        t["gen_embeds"], t["gen_embeds_mask"] = eemb, emask
        embeds_kw = dict(inputs_embeds=eemb, attention_mask=emask, max_new_tokens=EMBED_NEW, eos_token_id=None,
                         **gen_common)
        eg = robust_generate(model, name, "embeds_greedy_ids", output_scores=True, return_dict_in_generate=True,
                             **embeds_kw)
        t["embeds_greedy_ids"] = eg.sequences
        margin = min(margin, greedy_margin(eg.scores))
        t["embeds_beam_ids"] = robust_generate(model, name, "embeds_beam_ids", num_beams=EMBED_BEAMS, length_penalty=1.0,
                                               early_stopping=False, num_return_sequences=1, **embeds_kw)
        # Suppressed tokens (SuppressTokensLogitsProcessor: -inf on the raw scores in greedy, on the log-probs in
        # beam search): every token the unsuppressed greedy run chose first, so each row has to change course.
        suppress = sorted(set(eg.sequences[:, 0].tolist()))
        t["suppress_token_ids"] = torch.tensor(suppress, dtype=torch.long)
        sg = robust_generate(model, name, "embeds_suppressed_greedy_ids", output_scores=True,
                             return_dict_in_generate=True, suppress_tokens=suppress, **embeds_kw)
        t["embeds_suppressed_greedy_ids"] = sg.sequences
        margin = min(margin, greedy_margin(tuple(s.masked_fill(s.isinf(), -1e9) for s in sg.scores)))
        t["embeds_suppressed_beam_ids"] = robust_generate(
            model, name, "embeds_suppressed_beam_ids", num_beams=EMBED_BEAMS, length_penalty=1.0, early_stopping=False,
            num_return_sequences=1, suppress_tokens=suppress, **embeds_kw)
    if margin < MIN_GAP:
        raise NearTie(f"case {name}: a greedy step has top-1/top-2 logit gap {margin:.3g} < {MIN_GAP}")
    for key, want in (("greedy_ids", SEQ + GREEDY_NEW), ("beam_ids", SEQ + GREEDY_NEW),
                      ("batch_greedy_ids", SEQ + BATCH_NEW)):
        if t[key].shape[1] != want:
            die(f"case {name}: {key} has length {t[key].shape[1]}, expected {want} (EOS handling changed?)")
    for key in ("embeds_greedy_ids", "embeds_beam_ids", "embeds_suppressed_greedy_ids", "embeds_suppressed_beam_ids"):
        if tuple(t[key].shape) != (len(EMBED_PROMPT_LENS), EMBED_NEW):
            die(f"case {name}: {key} has shape {tuple(t[key].shape)}, expected only the {EMBED_NEW} new tokens per row")
    if torch.isin(t["embeds_suppressed_greedy_ids"], t["suppress_token_ids"]).any():
        die(f"case {name}: a suppressed token was generated")
    be_len = be.shape[1]
    if be_len > BEAM_EOS_WIDTH:
        die(f"case {name}: beam_eos_ids longer than {BEAM_EOS_WIDTH}")
    beam_finished = be_len < SEQ + GREEDY_NEW
    if beam_finished and int(be[0, -1]) != config.eos_token_id:
        die(f"case {name}: beam search stopped early at length {be_len} without EOS")
    t["beam_eos_ids"] = torch.cat([be, torch.full((1, BEAM_EOS_WIDTH - be_len), -1, dtype=torch.long)], dim=1)
    t["beam_eos_len"] = torch.tensor([be_len], dtype=torch.long)

    # Rank-stabilised LoRA (scaling alpha / sqrt(r) = 4 instead of alpha / r = 2), made last so that its random
    # init does not move the fixtures above.
    rs_cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=LORA_TARGETS, bias="none",
                        task_type="CAUSAL_LM", init_lora_weights=False, use_rslora=True)
    rsmodel = get_peft_model(copy.deepcopy(model), rs_cfg)
    with torch.no_grad():
        for n, p in rsmodel.named_parameters():
            if "lora_B" in n and not p.abs().max() > 0:
                p.normal_(0.0, 0.1)
    rsmodel.eval()
    with torch.no_grad():
        t["rslora_logits"] = rsmodel(ids, attention_mask=mask, position_ids=pos).logits

    meta = {"case": name, "transformers": transformers.__version__, "peft": peft.__version__,
            "torch": torch.__version__, "eos_handling": EOS_HANDLING, "seed": str(seed),
            "decision_check": f"greedy/beam ids unchanged under +-{JITTER} uniform noise on the scores "
                              f"({JITTER_DRAWS} draws)",
            "attn_implementation": "eager",
            "logits_note": ("logits at masked (pad) positions are unspecified (a fully masked query row); compare "
                            "only positions where the attention mask is 1"),
            "loss_note": "causal LM loss: logits[:, :-1] predict labels[:, 1:], mean over labels != -100",
            "position_ids_note": "logits/loss/lora_*: position_ids = clamp(cumsum(mask)-1, 0); right_logits: arange",
            "lora": json.dumps({"r": 4, "lora_alpha": 8, "scaling": 2.0, "init_lora_weights": False,
                                "b_reinitialised_normal_0.1": bool(b_zero)}),
            "embeds_note": ("embeds_grad*: d lora loss / d embeds (inputs_embeds, attention_mask, position_ids, labels), "
                            "gradient checkpointing off / on, train mode; gen_embeds: prompts of lengths "
                            f"{EMBED_PROMPT_LENS} left-padded, embeds_*_ids: new tokens only, num_beams {EMBED_BEAMS}"),
            "rslora": json.dumps({"r": 4, "lora_alpha": 8, "use_rslora": True, "scaling": 4.0}),
            "greedy_min_top2_gap": f"{margin:.6g}", "beam_eos_finished": str(beam_finished).lower(),
            "config": json.dumps({**CASES[name], **COMMON})}
    t = {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in t.items()}
    info = {"margin": margin, "beam_eos_len": be_len, "lora_B_reinit": bool(b_zero), "tensors": len(t)}
    return model, pmodel, rsmodel, t, meta, info


def make_case(name: str, case_dir: str, seed: int) -> dict:
    model, pmodel, rsmodel, t, meta, info = compute_case(name, seed)

    def write(tmp: str) -> None:
        model.save_pretrained(os.path.join(tmp, "model"))
        if name == "gqa":
            model.save_pretrained(os.path.join(tmp, "model_sharded"), max_shard_size=SHARD_SIZE)
            shards = [f for f in os.listdir(os.path.join(tmp, "model_sharded")) if f.endswith(".safetensors")]
            if len(shards) < 3:
                die(f"case gqa: only {len(shards)} shards; lower SHARD_SIZE in {__file__}")
        pmodel.save_pretrained(os.path.join(tmp, "adapter"))
        rsmodel.save_pretrained(os.path.join(tmp, "adapter_rslora"))
        saved = set(load_file(os.path.join(tmp, "adapter", "adapter_model.safetensors")).keys())
        grads = {k[len("grad."):] for k in t if k.startswith("grad.")}
        if saved != grads:
            die(f"case {name}: adapter keys and gradient keys differ: {sorted(saved ^ grads)[:4]}")
        save_file(t, os.path.join(tmp, "fixtures.safetensors"), metadata=meta)

    atomic_write_dir(case_dir, write)
    info["bytes"] = os.path.getsize(os.path.join(case_dir, "fixtures.safetensors"))
    return info


def parse_ids(text: str) -> list[int]:
    try:
        ids = [int(x) for x in text.replace(",", " ").split()]
    except ValueError:
        die(f"--ids must be whitespace-separated integers, got {text!r}")
    if not ids:
        die("--ids is empty")
    return ids


def load_base(model_dir: str) -> LlamaForCausalLM:
    if not os.path.isfile(os.path.join(model_dir, "config.json")):
        die(f"{model_dir}: no config.json; pass a Hugging Face Llama model directory")
    try:
        model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    except Exception as e:  # transformers raises many types for a broken dir
        die(f"{model_dir}: cannot load as LlamaForCausalLM ({e})")
    return model.eval()


def cmd_peft_logits(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="make_parity_fixtures.py peft-logits",
                                 description="Logits of base model + PEFT LoRA adapter for one unpadded row.")
    ap.add_argument("--model", required=True, help="Hugging Face Llama dir (config.json + safetensors)")
    ap.add_argument("--adapter", required=True, help="PEFT adapter dir (adapter_config.json + adapter_model.*)")
    ap.add_argument("--ids", required=True, help='token ids, e.g. "1 5 7 9"')
    ap.add_argument("--out", required=True, help="output .safetensors (tensor `logits` [T, V] float32)")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    ids = parse_ids(a.ids)
    if not os.path.isfile(os.path.join(a.adapter, "adapter_config.json")):
        die(f"{a.adapter}: no adapter_config.json; pass a PEFT adapter directory")
    base = load_base(a.model)
    if max(ids) >= base.config.vocab_size or min(ids) < 0:
        die(f"--ids must lie in [0, {base.config.vocab_size}) for {a.model}")
    try:
        model = PeftModel.from_pretrained(base, a.adapter)
    except Exception as e:
        die(f"{a.adapter}: PEFT cannot load this adapter onto {a.model} ({e})")
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor([ids], dtype=torch.long)).logits[0].float().contiguous()
    meta = {"transformers": transformers.__version__, "peft": peft.__version__, "torch": torch.__version__,
            "ids": " ".join(map(str, ids))}
    atomic_write(a.out, lambda p: save_file({"logits": logits}, p, metadata=meta), suffix=".safetensors")
    print(f"wrote {a.out}: logits {list(logits.shape)}")
    return 0


def decode_text(model_dir: str, ids: list[int]) -> str:
    spm_path = os.path.join(model_dir, "tokenizer.model")
    if not os.path.isfile(spm_path):
        die(f"{model_dir}: no tokenizer.model to decode with; convert with scripts/convert_llama2c.py")
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=spm_path)
    # Decode story by story: control ids (BOS/EOS) would otherwise vanish silently and glue stories together.
    parts, cur = [], []
    for i in ids:
        if i in (sp.bos_id(), sp.eos_id()):
            if cur:
                parts.append(sp.decode(cur))
            cur = []
            parts.append(sp.id_to_piece(i))
        else:
            cur.append(i)
    if cur:
        parts.append(sp.decode(cur))
    return "".join(parts)


def cmd_stories(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="make_parity_fixtures.py stories",
                                 description="Greedy continuation from BOS of a converted llama2.c model.")
    ap.add_argument("--model", required=True, help="dir written by scripts/convert_llama2c.py")
    ap.add_argument("--out", required=True, help="output .safetensors (greedy_ids [1, 1+N], metadata text)")
    ap.add_argument("--new-tokens", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    model = load_base(a.model)
    bos = model.config.bos_token_id if model.config.bos_token_id is not None else 1
    prompt = torch.tensor([[bos]], dtype=torch.long)
    with torch.no_grad():
        g = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=a.new_tokens,
                           do_sample=False, use_cache=True, eos_token_id=None, pad_token_id=0,
                           output_scores=True, return_dict_in_generate=True)
    out = g.sequences
    # A real model can come close to ties; the gap tells the C++ test how robust the exact-ids comparison is.
    gaps = [(lambda top: (top[0, 0] - top[0, 1]).item())(sc.topk(2, dim=-1).values) for sc in g.scores]
    worst = min(range(len(gaps)), key=gaps.__getitem__)
    if out.shape[1] != 1 + a.new_tokens:
        die(f"generate returned {out.shape[1]} ids, expected {1 + a.new_tokens}")
    text = decode_text(a.model, out[0, 1:].tolist())
    meta = {"transformers": transformers.__version__, "torch": torch.__version__, "text": text,
            "eos_handling": EOS_HANDLING, "prompt": "[[BOS]]", "attn_implementation": "eager",
            "greedy_min_top2_gap": f"{gaps[worst]:.6g}", "greedy_min_top2_gap_step": str(worst)}
    atomic_write(a.out, lambda p: save_file({"greedy_ids": out.contiguous()}, p, metadata=meta),
                 suffix=".safetensors")
    print(f"wrote {a.out}: greedy_ids {list(out.shape)}, smallest top-1/top-2 logit gap {gaps[worst]:.3g} "
          f"(new token {worst})")
    print(text)
    return 0


def cmd_cases(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Other modes: `%(prog)s peft-logits --help`, `%(prog)s stories --help`.")
    ap.add_argument("--out", required=True, help="output dir; writes OUT/<case>/{model,adapter,fixtures.safetensors}")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of: " + ",".join(CASES))
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    names = [c.strip() for c in a.cases.split(",") if c.strip()]
    bad = [c for c in names if c not in CASES]
    if bad or not names:
        die(f"unknown case(s) {bad or a.cases!r}; choose from {','.join(CASES)}")
    torch.set_num_threads(a.threads)
    for name in names:
        t0 = time.time()
        try:
            info = make_case(name, os.path.join(a.out, name), CASE_SEEDS[name])
        except NearTie as e:
            die(f"{e}; pick another seed in CASE_SEEDS (or EMBED_SEEDS for embeds_*) ({__file__})")
        print(f"{name}: {info['tensors']} tensors, {info['bytes']} bytes, greedy min top-2 gap "
              f"{info['margin']:.3g}, beam_eos_len {info['beam_eos_len']}, {time.time() - t0:.1f}s")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "peft-logits":
        return cmd_peft_logits(argv[1:])
    if argv and argv[0] == "stories":
        return cmd_stories(argv[1:])
    return cmd_cases(argv)


if __name__ == "__main__":
    sys.exit(main())
