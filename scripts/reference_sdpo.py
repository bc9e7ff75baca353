#!/usr/bin/env python3
"""S-DPO's loss written again with torch + transformers + PEFT, as the reference sbtrec's preference
objective is checked against (tests/train/sbtrec_parity_test.cpp, SbtRecParity.Sdpo*). Independent of
sbtrec's code and of its shared-prompt packing: every answer is scored with its own forward of prompt +
answer, as TRL's DPO trainers do.

Reads a directory the C++ test writes:
  model/               Hugging Face Llama directory, slot rows included (the shared base)
  adapter/, ref_adapter/   PEFT LoRA adapters of the policy and of the frozen reference
  sbtrec.safetensors, ref_sbtrec.safetensors   item_vectors [N, D], user_vectors [B, Z], codebooks
                       [L, K, D], user_codebooks [L, K, Z], item_aligner.* / user_aligner.* (policy, reference)
  cases.json           {"tokenizer", "templates", "user_token", "beta", "cases": [{"template", "history",
                       "history_items", "candidates", "candidate_items", "answers": [chosen title, rejected...]}]}
and writes reference.safetensors: per case and answer the policy's and the reference's summed answer
log-probabilities (logp.policy, logp.reference [B, J]), the loss
-log sigmoid(-log sum_{j>=1} exp(beta ((pi_j - ref_j) - (pi_0 - ref_0)))) averaged over the cases, and
the gradients of the policy's codebooks, aligners and every LoRA A/B.
Usage: reference_sdpo.py DIR
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_common import gradients, load_aligner, mbsr, prompt_ids, slot_tokenizer  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir", help="directory written by the C++ test")
    args = ap.parse_args(argv)

    import torch
    from peft import PeftModel
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM

    torch.use_deterministic_algorithms(True)
    spec = json.load(open(os.path.join(args.dir, "cases.json"), encoding="utf-8"))
    tok, slot_id = slot_tokenizer(spec["tokenizer"])

    def side(adapter, tensors, trainable):
        t = load_file(os.path.join(args.dir, tensors))
        base = AutoModelForCausalLM.from_pretrained(os.path.join(args.dir, "model"), dtype=torch.float32)
        model = PeftModel.from_pretrained(base, os.path.join(args.dir, adapter), is_trainable=trainable)
        model.train() if trainable else model.eval()  # lora_dropout is 0
        codebooks = {"items": torch.nn.Parameter(t["codebooks"].clone(), requires_grad=trainable)}
        if "user_codebooks" in t:
            codebooks["user"] = torch.nn.Parameter(t["user_codebooks"].clone(), requires_grad=trainable)

        aligners = {"items": load_aligner(t, "item_aligner", trainable)}
        if spec["user_token"]:
            aligners["user"] = load_aligner(t, "user_aligner", trainable)
        return {"model": model, "t": t, "codebooks": codebooks, "aligners": aligners}

    policy = side("adapter", "sbtrec.safetensors", True)
    reference = side("ref_adapter", "ref_sbtrec.safetensors", False)

    def answer_logp(s, case_index, p, found, answer):
        """log p(answer | prompt), summed, from one forward of prompt + answer (one row, no padding)."""
        a = tok(answer + "\n", add_special_tokens=False).input_ids
        ids = torch.tensor([p + a])
        embeds = s["model"].get_input_embeddings()(ids)
        for kind in ("items", "user"):
            sel = [(pos, item) for pos, k, item in found if k == kind]
            if not sel:
                continue
            src = s["t"]["item_vectors"] if kind == "items" else s["t"]["user_vectors"]
            x = src[torch.tensor([case_index if kind == "user" else item for _, item in sel])]
            e = mbsr(x, s["codebooks"][kind]) if kind in s["codebooks"] else x
            embeds = embeds.index_put((torch.zeros(len(sel), dtype=torch.long), torch.tensor([pos for pos, _ in sel])),
                                      s["aligners"][kind](e))
        logits = s["model"](inputs_embeds=embeds).logits[0].float()  # [P + A, V]
        logp = torch.log_softmax(logits[len(p) - 1:len(p) + len(a) - 1], -1)
        return logp.gather(1, torch.tensor(a)[:, None]).sum()

    pis, refs = [], []
    for i, c in enumerate(spec["cases"]):
        p, found = prompt_ids(tok, slot_id, spec, c)
        pis.append(torch.stack([answer_logp(policy, i, p, found, a) for a in c["answers"]]))
        with torch.no_grad():
            refs.append(torch.stack([answer_logp(reference, i, p, found, a) for a in c["answers"]]))
    pi, ref = torch.stack(pis), torch.stack(refs)  # [B, J]
    r = pi - ref
    margin = spec["beta"] * (r[:, 1:] - r[:, :1])
    loss = -torch.nn.functional.logsigmoid(-torch.logsumexp(margin, 1)).mean()
    loss.backward()
    out = {"loss": loss.detach().reshape(1), "logp.policy": pi.detach(), "logp.reference": ref}
    out.update(gradients(policy["codebooks"], policy["aligners"], policy["model"]))
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(args.dir, "reference.safetensors"))
    print(f"reference_sdpo: loss {loss.item():.6f}, {pi.shape[0]} cases x {pi.shape[1]} answers, wrote {args.dir}/reference.safetensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
