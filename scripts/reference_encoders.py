#!/usr/bin/env python3
"""Plain-PyTorch reference implementations of sbtrec's sequential encoders (SASRec, GRU4Rec, Caser,
following LLaRA's architecture and quirks), a loader for sbtrec checkpoint dirs, a BCE training step,
and a `fixtures` CLI that writes input/output tensors for the C++ parity tests.

Inputs everywhere: seq LongTensor [B, T] right-padded with pad id = num_items (real items first),
lengths LongTensor [B] (>= 1). Models return logits [B, num_items].
"""

from __future__ import annotations

import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtrec_io import atomic_write  # noqa: E402

import torch
import torch.nn.functional as F
from torch import nn

# LLaRA's masking constant; kept so that softmax outputs match bit-for-bit in spirit.
MASK_VALUE = float(-2**32 + 1)


def _check_inputs(seq: torch.Tensor, lengths: torch.Tensor, max_len: int | None = None) -> None:
    if seq.dim() != 2 or lengths.dim() != 1 or lengths.shape[0] != seq.shape[0]:
        raise ValueError(f"expected seq [B, T] and lengths [B], got {tuple(seq.shape)} and {tuple(lengths.shape)}")
    if seq.shape[0] and (int(lengths.min()) < 1 or int(lengths.max()) > seq.shape[1]):
        raise ValueError(f"lengths must lie in [1, T={seq.shape[1]}], got {lengths.tolist()}")
    if max_len is not None and seq.shape[1] > max_len:
        raise ValueError(f"sequence length T={seq.shape[1]} exceeds max_len={max_len}")


class MultiHeadAttention(nn.Module):
    """LLaRA-style attention: queries from ln_1(x), keys/values from x, scaled by sqrt(D) (not head size)."""

    def __init__(self, hidden_size: int, num_heads: int, dropout: float):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} not divisible by num_heads {num_heads}")
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.linear_q = nn.Linear(hidden_size, hidden_size)
        self.linear_k = nn.Linear(hidden_size, hidden_size)
        self.linear_v = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        b, t, d = queries.shape
        h = self.num_heads

        def split(z: torch.Tensor) -> torch.Tensor:
            # Chunking the feature dim into h pieces == view as [B, T, h, d/h]; heads to dim 1.
            return z.view(b, t, h, d // h).transpose(1, 2)

        q, k, v = split(self.linear_q(queries)), split(self.linear_k(keys)), split(self.linear_v(keys))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.hidden_size)  # [B, h, T, T]
        # Padding keys are recognised by an all-zero input row (x is zeroed at padding positions).
        key_pad = (keys.sum(-1) == 0).view(b, 1, 1, t)
        causal = torch.ones(t, t, dtype=torch.bool, device=queries.device).triu(1).view(1, 1, t, t)
        fill = torch.tensor(MASK_VALUE, dtype=scores.dtype, device=scores.device)
        scores = torch.where(key_pad, fill, scores)
        scores = torch.where(causal, fill, scores)
        weights = torch.softmax(scores, dim=-1)
        # Query mask: LLaRA zeroes rows whose (normalised) query sums to 0.
        qmask = torch.sign(torch.abs(queries.sum(-1))).view(b, 1, t, 1)
        weights = self.dropout(weights * qmask)
        out = (weights @ v).transpose(1, 2).reshape(b, t, d)
        return out + queries  # residual is the normalised query


class PositionwiseFeedForward(nn.Module):
    def __init__(self, hidden_size: int, dropout: float):
        super().__init__()
        # Conv1d with kernel 1 (LLaRA's form); weights shaped [D, D, 1] as in the checkpoints.
        self.w_1 = nn.Conv1d(hidden_size, hidden_size, 1)
        self.w_2 = nn.Conv1d(hidden_size, hidden_size, 1)
        self.layer_norm = nn.LayerNorm(hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        z = self.w_2(F.relu(self.w_1(y.transpose(1, 2)))).transpose(1, 2)
        return self.layer_norm(self.dropout(z) + y)


class SASRecBlock(nn.Module):
    def __init__(self, hidden_size: int, num_heads: int, dropout: float):
        super().__init__()
        self.ln_1 = nn.LayerNorm(hidden_size)
        self.mh_attn = MultiHeadAttention(hidden_size, num_heads, dropout)
        self.ln_2 = nn.LayerNorm(hidden_size)
        self.feed_forward = PositionwiseFeedForward(hidden_size, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.mh_attn(self.ln_1(x), x)
        return self.feed_forward(self.ln_2(h)) * mask


class SASRec(nn.Module):
    def __init__(self, num_items: int, hidden_size: int = 64, max_len: int = 10, num_blocks: int = 1,
                 num_heads: int = 1, dropout: float = 0.1):
        super().__init__()
        self.num_items = num_items
        self.hidden_size = hidden_size
        self.max_len = max_len
        self.item_embeddings = nn.Embedding(num_items + 1, hidden_size)
        nn.init.normal_(self.item_embeddings.weight, 0.0, 1.0)
        self.positional_embeddings = nn.Embedding(max_len, hidden_size)
        self.emb_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(SASRecBlock(hidden_size, num_heads, dropout) for _ in range(num_blocks))
        self.ln_3 = nn.LayerNorm(hidden_size)
        self.s_fc = nn.Linear(hidden_size, num_items)

    def sequence_representation(self, seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        _check_inputs(seq, lengths, self.max_len)
        t = seq.shape[1]
        pos = torch.arange(t, device=seq.device)
        x = self.emb_dropout(self.item_embeddings(seq) + self.positional_embeddings(pos))
        mask = (seq != self.num_items).float().unsqueeze(-1)
        x = x * mask
        for block in self.blocks:
            x = block(x, mask)
        x = self.ln_3(x)
        return x[torch.arange(seq.shape[0], device=seq.device), lengths - 1]

    def forward(self, seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.s_fc(self.sequence_representation(seq, lengths))


class GRU4Rec(nn.Module):
    def __init__(self, num_items: int, hidden_size: int = 64, num_layers: int = 1):
        super().__init__()
        self.num_items = num_items
        self.item_embeddings = nn.Embedding(num_items + 1, hidden_size)
        nn.init.normal_(self.item_embeddings.weight, 0.0, 0.01)
        self.gru = nn.GRU(hidden_size, hidden_size, num_layers, batch_first=True)
        self.s_fc = nn.Linear(hidden_size, num_items)

    def sequence_representation(self, seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        _check_inputs(seq, lengths)
        packed = nn.utils.rnn.pack_padded_sequence(self.item_embeddings(seq), lengths.cpu(),
                                                   batch_first=True, enforce_sorted=False)
        _, h = self.gru(packed)  # h: [num_layers, B, D], already back in input order
        return h[-1]

    def forward(self, seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.s_fc(self.sequence_representation(seq, lengths))


class Caser(nn.Module):
    def __init__(self, num_items: int, hidden_size: int = 64, max_len: int = 10, num_filters: int = 16,
                 filter_sizes=(2, 3, 4), dropout: float = 0.1):
        super().__init__()
        self.num_items = num_items
        self.hidden_size = hidden_size
        self.max_len = max_len
        self.filter_sizes = list(filter_sizes)
        self.item_embeddings = nn.Embedding(num_items + 1, hidden_size)
        nn.init.normal_(self.item_embeddings.weight, 0.0, 0.01)
        self.horizontal_cnn = nn.ModuleList(nn.Conv2d(1, num_filters, (h, hidden_size)) for h in self.filter_sizes)
        self.vertical_cnn = nn.Conv2d(1, 1, (max_len, 1))
        for conv in [*self.horizontal_cnn, self.vertical_cnn]:
            nn.init.xavier_normal_(conv.weight)
            nn.init.constant_(conv.bias, 0.1)
        self.s_fc = nn.Linear(hidden_size + num_filters * len(self.filter_sizes), num_items)
        self.dropout = nn.Dropout(dropout)

    def sequence_representation(self, seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        _check_inputs(seq, lengths, self.max_len)
        b, t = seq.shape
        if t < self.max_len:
            # The vertical conv spans exactly max_len rows; extra padding rows are zeroed below,
            # which is what LLaRA sees with its fixed-length inputs.
            seq = F.pad(seq, (0, self.max_len - t), value=self.num_items)
        mask = (seq != self.num_items).float().unsqueeze(-1)
        e = (self.item_embeddings(seq) * mask).unsqueeze(1)  # [B, 1, T, D]
        pooled = []
        for conv in self.horizontal_cnn:
            h = F.relu(conv(e)).squeeze(3)  # [B, F, T-h+1]; squeeze(3) only, so B == 1 is safe
            pooled.append(h.amax(dim=2))
        v = F.relu(self.vertical_cnn(e)).view(b, self.hidden_size)
        return self.dropout(torch.cat([*pooled, v], dim=1))

    def forward(self, seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.s_fc(self.sequence_representation(seq, lengths))


def build_model(cfg: dict, num_items: int) -> nn.Module:
    """Build from the `encoder:` section of an sbtrec config.yaml (`model:` before sbtrec 0.2)."""
    mtype = cfg.get("type")
    d = int(cfg.get("hidden_size", 64))
    max_len = int(cfg.get("max_len", 10))
    dropout = float(cfg.get("dropout", 0.1))
    if mtype == "sasrec":
        s = cfg.get("sasrec") or {}
        return SASRec(num_items, d, max_len, int(s.get("num_blocks", 1)), int(s.get("num_heads", 1)), dropout)
    if mtype == "gru4rec":
        return GRU4Rec(num_items, d, int((cfg.get("gru4rec") or {}).get("num_layers", 1)))
    if mtype == "caser":
        c = cfg.get("caser") or {}
        return Caser(num_items, d, max_len, int(c.get("num_filters", 16)),
                     tuple(int(x) for x in c.get("filter_sizes", (2, 3, 4))), dropout)
    raise ValueError(f"unknown encoder.type {mtype!r}; expected sasrec, gru4rec or caser")


def load_sbtrec_checkpoint(path: str) -> nn.Module:
    """Build the model described by DIR/config.yaml and strictly load DIR/model.safetensors."""
    import yaml
    from safetensors.torch import load_file

    cfg_path = os.path.join(path, "config.yaml")
    st_path = os.path.join(path, "model.safetensors")
    for p in (cfg_path, st_path):
        if not os.path.isfile(p):
            raise FileNotFoundError(f"{p}: missing; an sbtrec checkpoint dir needs config.yaml and model.safetensors "
                                    f"(create one with scripts/import_llara_checkpoint.py)")
    with open(cfg_path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    section = "encoder" if isinstance(doc, dict) and isinstance(doc.get("encoder"), dict) else "model"
    if not isinstance(doc, dict) or not isinstance(doc.get(section), dict):
        raise ValueError(f"{cfg_path}: no `encoder:` mapping")
    tensors = load_file(st_path)
    if "s_fc.bias" not in tensors:
        raise ValueError(f"{st_path}: no s_fc.bias tensor, cannot infer num_items")
    num_items = int(tensors["s_fc.bias"].shape[0])  # the item count is implied by the output layer
    model = build_model(doc[section], num_items)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{st_path}: does not match {cfg_path}: {e}") from e
    model.sbtrec_config = doc[section]
    return model


def sample_negatives(target: torch.Tensor, num_items: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """One negative per row, uniform over the num_items - 1 items that are not the row's target
    (draw from [0, N-1) and shift draws at or above the target by one: no resampling loop)."""
    if num_items < 2:
        raise ValueError("negative sampling needs at least 2 items")
    neg = torch.randint(0, num_items - 1, target.shape, generator=generator)
    return neg + (neg >= target).long()


def pair_logits(model: nn.Module, z: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Logits of the given items only: z [B, Z], items [B, C] -> [B, C], from the rows of s_fc
    (the same numbers as model.s_fc(z).gather(1, items) without the [B, N] product)."""
    w = model.s_fc.weight[items]                      # [B, C, Z]
    return torch.bmm(w, z.unsqueeze(2)).squeeze(2) + model.s_fc.bias[items]


def bce_loss(pair: torch.Tensor) -> torch.Tensor:
    """pair [B, 2] = (target logit, negative logit): sum of the two BCE terms per row, batch mean."""
    labels = torch.zeros_like(pair)
    labels[:, 0] = 1.0
    return F.binary_cross_entropy_with_logits(pair, labels) * 2.0


def make_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=1e-3)


def bce_train_step(model: nn.Module, optimizer: torch.optim.Optimizer, seq: torch.Tensor, lengths: torch.Tensor,
                   target: torch.Tensor, generator: torch.Generator | None = None) -> float:
    """One step: forward, BCE with one sampled negative per row, backward, optimizer step; returns the
    loss. Same algorithm as sbtrec's encoder::train_step (only the two needed logits are computed)."""
    neg = sample_negatives(target, model.num_items, generator)
    optimizer.zero_grad(set_to_none=True)
    z = model.sequence_representation(seq, lengths)
    loss = bce_loss(pair_logits(model, z, torch.stack([target, neg], 1)))
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def make_fixture_batch(num_items: int, max_len: int, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic right-padded batch; lengths cover 1 and max_len, the rest random."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, max_len + 1, (batch,), generator=g)
    if batch >= 1:
        lengths[0] = 1
    if batch >= 2:
        lengths[1] = max_len
    seq = torch.randint(0, num_items, (batch, max_len), generator=g)
    pad = torch.arange(max_len).unsqueeze(0) >= lengths.unsqueeze(1)
    seq[pad] = num_items
    return seq, lengths


def cmd_fixtures(args: argparse.Namespace) -> int:
    try:
        model = load_sbtrec_checkpoint(args.checkpoint)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.batch < 1:
        print("error: --batch must be >= 1", file=sys.stderr)
        return 1
    model.eval()
    cfg = model.sbtrec_config
    max_len = int(cfg.get("max_len", 10))
    seq, lengths = make_fixture_batch(model.num_items, max_len, args.batch, args.seed)
    with torch.no_grad():
        out = {"seq": seq.to(torch.int64).contiguous(), "lengths": lengths.to(torch.int64).contiguous(),
               "logits": model(seq, lengths).float().contiguous()}
        if cfg["type"] == "sasrec":
            out["state"] = model.sequence_representation(seq, lengths).float().contiguous()
    meta = {"format": "sbtrec-fixture", "version": "1", "type": str(cfg["type"]),
            "num_items": str(model.num_items), "checkpoint": os.path.abspath(args.checkpoint),
            "seed": str(args.seed), "torch": torch.__version__}
    from safetensors.torch import save_file
    atomic_write(args.out, lambda tmp: save_file(out, tmp, metadata=meta), suffix=".safetensors")
    finite = bool(torch.isfinite(out["logits"]).all())
    print(f"wrote {args.out}: type={cfg['type']} batch={args.batch} lengths={lengths.tolist()} "
          f"logits finite={finite} mean={out['logits'].mean().item():.4f}")
    return 0 if finite else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    fx = sub.add_parser("fixtures", help="write a parity fixture (seq, lengths, logits[, state]) for the C++ tests")
    fx.add_argument("--checkpoint", required=True, help="sbtrec checkpoint dir (config.yaml + model.safetensors)")
    fx.add_argument("--out", required=True, help="output .safetensors file")
    fx.add_argument("--batch", type=int, default=8)
    fx.add_argument("--seed", type=int, default=0)
    fx.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    return cmd_fixtures(args)


if __name__ == "__main__":
    sys.exit(main())
