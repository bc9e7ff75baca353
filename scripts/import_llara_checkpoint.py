#!/usr/bin/env python3
"""Convert one of LLaRA's pickled recommender checkpoints (whole nn.Module .pt: SASRec, GRU, Caser)
into an sbtrec encoder checkpoint dir: model.safetensors (sbtrec tensor names) + config.yaml (encoder: section).

LLaRA's classes are not needed: a restricted unpickler substitutes empty nn.Module stubs for them.
"""

from __future__ import annotations

import argparse
import builtins
import collections
import importlib
import os
import pickle
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtrec_io import atomic_write  # noqa: E402
import types

import torch
from torch import nn

# Modules whose classes come from LLaRA's code; replaced by stubs (their state lives in __dict__).
STUB_MODULES = ("__main__", "SASRecModules_ori")

# Non-torch globals a plain nn.Module pickle needs. Everything else is refused.
SAFE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): None,  # resolved below (bytes round-trip for protocol-2 pickles)
    ("numpy", "dtype"): None,
    ("numpy", "ndarray"): None,
    ("numpy.core.multiarray", "scalar"): None,
    ("numpy.core.multiarray", "_reconstruct"): None,
    ("numpy._core.multiarray", "scalar"): None,
    ("numpy._core.multiarray", "_reconstruct"): None,
}
# Plain data types only (no eval/exec/getattr/__import__ ...). Py2-era pickles say "__builtin__".
SAFE_BUILTINS = {"set", "frozenset", "dict", "list", "tuple", "int", "float", "complex", "bool",
                 "str", "bytes", "bytearray", "slice"}

MODEL_TYPES = {"SASRec": "sasrec", "GRU": "gru4rec", "Caser": "caser"}

# Defaults written for the sub-sections the model does not use (and for absent attributes).
DEFAULTS = {"hidden_size": 64, "max_len": 10, "dropout": 0.1,
            "sasrec": {"num_blocks": 1, "num_heads": 1},
            "gru4rec": {"num_layers": 1},
            "caser": {"num_filters": 16, "filter_sizes": [2, 3, 4]}}


class CheckpointError(Exception):
    """Bad or unsupported checkpoint; the message names the file and what to do."""


_stub_cache: dict[tuple[str, str], type] = {}


def _stub_class(module: str, name: str) -> type:
    """An empty nn.Module subclass standing in for a LLaRA class; same name for type detection."""
    key = (module, name)
    if key not in _stub_cache:
        _stub_cache[key] = type(name, (nn.Module,), {"__module__": "sbtrec_llara_stub." + module,
                                                      "_llara_name": f"{module}.{name}"})
    return _stub_cache[key]


def _import_attr(module: str, name: str):
    if module.startswith("numpy.core") and not hasattr(importlib.import_module("numpy"), "core"):
        module = module.replace("numpy.core", "numpy._core", 1)
    if module.startswith("numpy.core."):
        # numpy>=2 deprecates numpy.core; numpy._core holds the same objects.
        try:
            return getattr(importlib.import_module(module.replace("numpy.core", "numpy._core", 1)), name)
        except (ImportError, AttributeError):
            pass
    return getattr(importlib.import_module(module), name)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only resolves an allow-list of globals; LLaRA classes become stubs."""

    source = "<checkpoint>"

    def find_class(self, module: str, name: str):
        if module in STUB_MODULES or module.startswith("SASRecModules_ori."):
            return _stub_class(module, name)
        if module in ("builtins", "__builtin__") and name in SAFE_BUILTINS:
            return getattr(builtins, name)
        if (module, name) in SAFE_GLOBALS:
            obj = SAFE_GLOBALS[(module, name)]
            return obj if obj is not None else _import_attr(module, name)
        if module == "torch" or module.startswith("torch."):
            try:
                obj = _import_attr(module, name)
            except (ImportError, AttributeError) as e:
                raise pickle.UnpicklingError(f"{self.source}: unknown torch global {module}.{name}: {e}") from e
            # Only classes (modules, dtypes, devices, storages) and tensor-rebuild helpers: no
            # arbitrary torch functions (torch.load, torch.hub.*, ...) can be invoked.
            if isinstance(obj, type) or (module == "torch._utils" and name.startswith("_rebuild_")):
                return obj
            if isinstance(obj, (torch.dtype, torch.layout, torch.memory_format)):
                return obj
        raise pickle.UnpicklingError(
            f"{self.source}: refusing to load global {module}.{name}: it is not on the allow-list "
            f"(torch classes, numpy/collections/_codecs helpers, LLaRA model classes). This file is "
            f"not a plain LLaRA checkpoint; do not load it unless you trust and inspect it.")


def load_llara_module(path: str) -> nn.Module:
    """torch.load the whole-module pickle with RestrictedUnpickler; returns the stub module tree."""
    unpickler_cls = type("RestrictedUnpickler", (RestrictedUnpickler,), {"source": path})
    pickle_module = types.ModuleType("sbtrec_restricted_pickle")
    pickle_module.Unpickler = unpickler_cls
    pickle_module.UnpicklingError = pickle.UnpicklingError
    pickle_module.load = lambda f, **kw: unpickler_cls(f, **kw).load()
    pickle_module.__version__ = getattr(pickle, "format_version", "4.0")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False, pickle_module=pickle_module)
    except pickle.UnpicklingError as e:
        raise CheckpointError(str(e)) from e
    except (RuntimeError, OSError, EOFError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot read as a PyTorch checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(obj, nn.Module):
        raise CheckpointError(f"{path}: contains a {type(obj).__name__}, expected a whole pickled nn.Module "
                              f"(LLaRA's rec_model/*.pt)")
    return obj


def _int_attr(m: nn.Module, name: str, path: str) -> int:
    v = m.__dict__.get(name)
    if v is None:
        raise CheckpointError(f"{path}: model has no attribute {name!r}; not a LLaRA checkpoint?")
    return int(v)


def read_config(m: nn.Module, path: str) -> tuple[str, dict]:
    cls = type(m).__name__
    if cls not in MODEL_TYPES:
        raise CheckpointError(f"{path}: top-level class {cls!r} is not one of {sorted(MODEL_TYPES)}")
    mtype = MODEL_TYPES[cls]
    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULTS.items()}
    cfg["caser"]["filter_sizes"] = list(DEFAULTS["caser"]["filter_sizes"])
    cfg["hidden_size"] = _int_attr(m, "hidden_size", path)
    item_num = _int_attr(m, "item_num", path)
    if "state_size" in m.__dict__:
        cfg["max_len"] = int(m.__dict__["state_size"])
    if "dropout_rate" in m.__dict__:
        cfg["dropout"] = float(m.__dict__["dropout_rate"])
    elif isinstance(getattr(m._modules.get("dropout"), "p", None), float):
        # LLaRA's SASRec keeps the rate only on its Dropout submodule.
        cfg["dropout"] = float(m._modules["dropout"].p)
    if mtype == "sasrec":
        blocks = [k for k in m._modules if k.startswith("mh_attn")]
        cfg["sasrec"]["num_blocks"] = max(1, len(blocks))
        attn = m._modules.get("mh_attn")
        heads = (attn.__dict__.get("num_heads") if attn is not None else None) or m.__dict__.get("num_heads")
        if heads is not None:
            cfg["sasrec"]["num_heads"] = int(heads)
    elif mtype == "gru4rec":
        gru = m._modules.get("gru")
        if gru is None:
            raise CheckpointError(f"{path}: GRU model has no 'gru' submodule")
        cfg["gru4rec"]["num_layers"] = int(gru.num_layers)
    elif mtype == "caser":
        if "num_filters" in m.__dict__:
            cfg["caser"]["num_filters"] = int(m.__dict__["num_filters"])
        fs = m.__dict__.get("filter_sizes")
        if fs is not None:
            # LLaRA stores filter sizes as a string like "[2,3,4]" in some versions.
            if isinstance(fs, str):
                fs = [int(x) for x in re.findall(r"\d+", fs)]
            cfg["caser"]["filter_sizes"] = [int(x) for x in fs]
    return mtype, {"item_num": item_num, **cfg}


# SASRec: LLaRA names its single block's modules at top level; sbtrec nests them under blocks.0.
_SASREC_TOP = ("item_embeddings.", "positional_embeddings.", "s_fc.", "ln_3.")
_SASREC_BLOCK = ("ln_1.", "ln_2.", "mh_attn.linear_q.", "mh_attn.linear_k.", "mh_attn.linear_v.",
                 "feed_forward.w_1.", "feed_forward.w_2.", "feed_forward.layer_norm.")
_GRU_KEYS = re.compile(r"^(item_embeddings\.weight|gru\.(weight|bias)_(ih|hh)_l\d+|s_fc\.(weight|bias))$")
_CASER_KEYS = re.compile(r"^(item_embeddings\.weight|horizontal_cnn\.\d+\.(weight|bias)|"
                         r"vertical_cnn\.(weight|bias)|s_fc\.(weight|bias))$")


def map_names(mtype: str, sd: dict, path: str) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    unmapped = []
    for k, v in sd.items():
        new = None
        if mtype == "sasrec":
            if k.startswith(_SASREC_TOP) and k.count(".") == 1:
                new = k
            elif k.startswith(_SASREC_BLOCK) and k.rsplit(".", 1)[-1] in ("weight", "bias"):
                new = "blocks.0." + k
        elif mtype == "gru4rec" and _GRU_KEYS.match(k):
            new = k
        elif mtype == "caser" and _CASER_KEYS.match(k):
            new = k
        if new is None:
            unmapped.append(k)
        else:
            out[new] = v.detach().to(torch.float32).contiguous().clone()
    if unmapped:
        raise CheckpointError(f"{path}: {len(unmapped)} state_dict keys have no sbtrec name "
                              f"({mtype}): {', '.join(unmapped)}")
    return out


def check_shapes(mtype: str, cfg: dict, t: dict, path: str) -> None:
    """Catch hyperparameter/weight disagreements now rather than in the C++ loader."""
    n, d = cfg["item_num"], cfg["hidden_size"]
    expect = {"item_embeddings.weight": (n + 1, d), "s_fc.bias": (n,)}
    if mtype == "sasrec":
        expect["positional_embeddings.weight"] = (cfg["max_len"], d)
        expect["s_fc.weight"] = (n, d)
        expect["blocks.0.feed_forward.w_1.weight"] = (d, d, 1)
    elif mtype == "gru4rec":
        expect["s_fc.weight"] = (n, d)
        expect["gru.weight_ih_l0"] = (3 * d, d)
    else:
        c = cfg["caser"]
        expect["s_fc.weight"] = (n, d + c["num_filters"] * len(c["filter_sizes"]))
        expect["vertical_cnn.weight"] = (1, 1, cfg["max_len"], 1)
        for i, h in enumerate(c["filter_sizes"]):
            expect[f"horizontal_cnn.{i}.weight"] = (c["num_filters"], 1, h, d)
    for k, shape in expect.items():
        if k not in t:
            raise CheckpointError(f"{path}: tensor {k} missing after conversion")
        if tuple(t[k].shape) != shape:
            raise CheckpointError(f"{path}: tensor {k} has shape {tuple(t[k].shape)}, expected {shape} "
                                  f"from the stored hyperparameters")


def config_yaml(mtype: str, cfg: dict, source: str) -> str:
    c = cfg
    fs = ", ".join(str(x) for x in c["caser"]["filter_sizes"])
    return (f"# sbtrec encoder config, converted by scripts/import_llara_checkpoint.py\n"
            f"# source: {source} (LLaRA {mtype}, item_num {c['item_num']})\n"
            f"encoder:\n"
            f"  type: {mtype}            # sasrec | gru4rec | caser\n"
            f"  hidden_size: {c['hidden_size']}\n"
            f"  max_len: {c['max_len']}\n"
            f"  dropout: {c['dropout']!r}\n"
            f"  sasrec: {{num_blocks: {c['sasrec']['num_blocks']}, num_heads: {c['sasrec']['num_heads']}}}\n"
            f"  gru4rec: {{num_layers: {c['gru4rec']['num_layers']}}}\n"
            f"  caser: {{num_filters: {c['caser']['num_filters']}, filter_sizes: [{fs}]}}\n")


def convert(checkpoint: str, out_dir: str) -> tuple[str, dict, dict]:
    from safetensors.torch import save_file

    if not os.path.isfile(checkpoint):
        raise CheckpointError(f"{checkpoint}: no such file; pass a LLaRA rec_model/*.pt with --checkpoint")
    m = load_llara_module(checkpoint)
    mtype, cfg = read_config(m, checkpoint)
    tensors = map_names(mtype, m.state_dict(), checkpoint)
    check_shapes(mtype, cfg, tensors, checkpoint)
    os.makedirs(out_dir, exist_ok=True)
    meta = {"format": "sbtrec-encoder", "version": "1", "source": os.path.basename(checkpoint)}
    atomic_write(os.path.join(out_dir, "model.safetensors"), lambda p: save_file(tensors, p, metadata=meta))

    def write_yaml(p: str) -> None:
        with open(p, "w", encoding="utf-8") as f:
            f.write(config_yaml(mtype, cfg, os.path.basename(checkpoint)))

    atomic_write(os.path.join(out_dir, "config.yaml"), write_yaml)
    return mtype, cfg, tensors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="LLaRA whole-module .pt file")
    ap.add_argument("--out", required=True, help="output sbtrec checkpoint dir (created if missing)")
    args = ap.parse_args(argv)
    try:
        mtype, cfg, tensors = convert(args.checkpoint, args.out)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    n_params = sum(t.numel() for t in tensors.values())
    print(f"{os.path.basename(args.checkpoint)}: type={mtype} item_num={cfg['item_num']} "
          f"hidden={cfg['hidden_size']} max_len={cfg['max_len']} dropout={cfg['dropout']} "
          f"tensors={len(tensors)} params={n_params} -> {os.path.abspath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
