"""Reference outputs of transformers + PEFT on the real SmolLM2-135M-Instruct weights (the GGUF file
that scripts/setup.sh installs), for sbtrec's parity test on them. transformers loads the same GGUF
(dequantized to float32 by the `gguf` package). Writes to --out:
  fixtures.safetensors  input_ids [1, 64] and their float32 logits [64, V]; the LoRA batch
                        (lora_input_ids [2, T], lora_labels with -100 outside the last 16 tokens), its
                        loss and every lora_A/lora_B gradient (grad.<PEFT key>)
  adapter/              the PEFT adapter (r 8 on all seven projections, random A and B) those came from
  generation.json       three chat prompts: their text, transformers' apply_chat_template ids and the
                        greedy continuation of 64 new tokens
  llama2_chat.json      (with --llama2-tokenizer) apply_chat_template ids of Llama-2-chat's template
                        for user messages with and without a system message
"""
from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' GGUF loader draws progress bars otherwise

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtrec_io import atomic_write_text  # noqa: E402

CHAT_PROMPTS = [
    "What is the capital of France?",
    "Name three movies about space travel.",
    "This user has watched Toy Story (1995), Heat (1995) and GoldenEye (1995). Which movie should they watch next?",
]
# Llama-2-chat's chat template, as meta-llama/Llama-2-7b-chat-hf's tokenizer_config.json has it.
LLAMA2_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
    "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
    "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TEXT = ("The quick brown fox jumps over the lazy dog. In 1995, Toy Story became the first feature film made "
        "entirely with computer animation; it earned $373 million worldwide and three Oscar nominations. "
        "Users who liked it often watched Aladdin (1992), The Lion King (1994) and Jumanji (1995) next, "
        "while fans of Heat (1995) preferred crime dramas such as Casino or L.A. Confidential (1997).")


def llama2_chat(tokenizer_model: str, out: str) -> None:
    import shutil
    import tempfile

    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as d:
        shutil.copy(tokenizer_model, os.path.join(d, "tokenizer.model"))
        cfg = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
               "unk_token": "<unk>", "pad_token": None, "clean_up_tokenization_spaces": False, "legacy": False,
               "tokenizer_class": "LlamaTokenizer", "chat_template": LLAMA2_CHAT_TEMPLATE}
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump(cfg, f)
        tok = AutoTokenizer.from_pretrained(d)
        rows = []
        for user, system in [("What is the capital of France?", None),
                             ("  Recommend a film.\n", "You are a movie expert."),
                             ("Which of Heat (1995), Casino (1995) is older?", "Answer with one title.")]:
            msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
            text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
            ids = tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True)
            if isinstance(ids, dict) or hasattr(ids, "input_ids"):
                ids = ids["input_ids"]
            rows.append({"user": user, "system": system, "text": text, "ids": list(ids)})
    atomic_write_text(os.path.join(out, "llama2_chat.json"), json.dumps(rows, ensure_ascii=False, indent=1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--gguf", required=True, help="SmolLM2-135M-Instruct GGUF file")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--llama2-tokenizer", default="", help="Llama-2 tokenizer.model for the Llama-2-chat case")
    args = ap.parse_args(argv)
    if not os.path.isfile(args.gguf):
        raise SystemExit(f"error: {args.gguf}: no such file (run ./scripts/setup.sh)")
    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    os.makedirs(args.out, exist_ok=True)
    d, f = os.path.split(os.path.abspath(args.gguf))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
    model.eval()
    t: dict[str, torch.Tensor] = {}

    ids = tok(TEXT, return_tensors="pt").input_ids[:, :64]
    if ids.shape[1] < 64:
        raise SystemExit(f"error: the reference text gives only {ids.shape[1]} tokens, need 64")
    with torch.no_grad():
        t["input_ids"] = ids.clone()
        t["logits"] = model(input_ids=ids).logits[0].float().contiguous()

    gen = []
    for prompt in CHAT_PROMPTS:
        msgs = [{"role": "user", "content": prompt}]
        text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        p = tok(text, return_tensors="pt", add_special_tokens=False).input_ids
        with torch.no_grad():
            out = model.generate(p, attention_mask=torch.ones_like(p), max_new_tokens=64, do_sample=False,
                                 num_beams=1, eos_token_id=model.config.eos_token_id, pad_token_id=2)
        new = out[0, p.shape[1]:].tolist()
        gen.append({"prompt": prompt, "text": text, "ids": p[0].tolist(), "new_ids": new,
                    "new_text": tok.decode(new, skip_special_tokens=True)})
    atomic_write_text(os.path.join(args.out, "generation.json"), json.dumps(gen, ensure_ascii=False, indent=1))

    # LoRA r 8 on all seven projections, A and B random (init_lora_weights=False: nn.Linear's init),
    # batch 2 x 48 with labels on the last 16 tokens of each row, as SBT-Rec supervises the answer.
    cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=LORA_TARGETS, bias="none",
                     task_type="CAUSAL_LM", init_lora_weights=False)
    pmodel = get_peft_model(model, cfg)
    with torch.no_grad():  # B at the scale training reaches, so the adapter moves the logits but does not swamp them
        for n, p in pmodel.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02)
    g = torch.Generator().manual_seed(1)
    lids = torch.randint(3, 49152, (2, 48), generator=g)
    labels = lids.clone()
    labels[:, :-16] = -100
    pmodel.train()
    out = pmodel(input_ids=lids, labels=labels)
    out.loss.backward()
    t["lora_input_ids"] = lids
    t["lora_labels"] = labels
    t["lora_loss"] = out.loss.detach().reshape(1)
    n_grads = 0
    for n, p in pmodel.named_parameters():
        if "lora_" in n:
            t["grad." + n.replace(".default.weight", ".weight")] = p.grad.detach().clone()
            n_grads += 1
    if n_grads != 2 * 7 * model.config.num_hidden_layers:
        raise SystemExit(f"error: expected {2 * 7 * model.config.num_hidden_layers} LoRA gradients, got {n_grads}")
    pmodel.save_pretrained(os.path.join(args.out, "adapter"))
    save_file({k: v.contiguous() for k, v in t.items()}, os.path.join(args.out, "fixtures.safetensors"))
    if args.llama2_tokenizer:
        llama2_chat(args.llama2_tokenizer, args.out)
    print(f"wrote SmolLM2 fixtures to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
