"""Save and load a quantized model: safetensors weights + JSON metadata, no pickle.

    DIR/config.json            the model config (save_pretrained)
    DIR/model.safetensors      every tensor of the state dict (fake-quant weights, scales, transforms' buffers)
    DIR/dllmq_quant.json       format, recipe, dtype, and how to rebuild every non-standard module:
                                 "modules": name -> {"type", "config"} (QuantLinear, PackedLinear, Hadamard, ...)
    DIR/tokenizer files        when a tokenizer is given

`load_quantized` rebuilds the architecture from config.json, puts back each recorded module (classes are
found through `qlinear.register_module`), then loads the tensors strictly: outputs are identical.
packed=True stores weight-only layers as PackedLinear (int4 codes, fp32 scales: still bit-exact).
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn as nn
from safetensors.torch import load_file
from safetensors.torch import load_model as st_load_model
from safetensors.torch import save_model as st_save_model

from .backends import PackedLinear, can_pack
from .qlinear import SERIALIZABLE, QuantLinear, build_module, module_spec
from .registry import METHODS

FORMAT = "dllmq-quantized-v1"
META_FILE = "dllmq_quant.json"
WEIGHTS_FILE = "model.safetensors"


def _import_serializable() -> None:
    """Import every method module so their transform classes are registered (missing ones are skipped)."""
    for path in METHODS.values():
        try:
            importlib.import_module(path)
        except ModuleNotFoundError:
            pass
    importlib.import_module("dllmq.quant.backends")


def _special_modules(model: nn.Module) -> dict:
    """name -> module for QuantLinear and registered modules that are not inside another recorded module."""
    found = {}
    for name, module in model.named_modules():
        if not name or any(name.startswith(p + ".") for p in found):
            continue
        if isinstance(module, QuantLinear) or type(module).__name__ in SERIALIZABLE:
            found[name] = module
    return found


def save_quantized(model: nn.Module, out_dir: Union[str, Path], tok=None, recipe=None, report=None,
                   packed: bool = False) -> Path:
    """Write `model` (quantized in place by dllmq.quantize) to `out_dir`; returns the directory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    to_save = model
    if packed:
        import copy
        from ..models import get_layout
        to_save = copy.deepcopy(model)
        for block in get_layout(to_save).blocks:
            for role, lin in block.linears.items():
                if can_pack(lin) and lin.input_transform is None and lin.act_quantizer is None \
                        and lin.output_quantizer is None:
                    block.set(role, PackedLinear.from_quantlinear(lin, scale_dtype="float32"))
    modules = {}
    for name, module in _special_modules(to_save).items():
        if isinstance(module, QuantLinear):
            modules[name] = {"type": "QuantLinear", "config": module.get_config()}
        else:
            modules[name] = module_spec(module)
    recipe = recipe if recipe is not None else getattr(model, "dllmq_recipe", None)
    meta = {"format": FORMAT, "recipe": None if recipe is None else str(recipe),
            "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
            "model_type": model.config.model_type, "class": type(model).__name__, "modules": modules}
    if report is not None:
        meta["report"] = {"mean_error": report.mean_error(), "layers": [r.__dict__ for r in report.layers],
                          "events": report.events}
    model.config.save_pretrained(out)
    st_save_model(to_save, str(out / WEIGHTS_FILE))
    (out / META_FILE).write_text(json.dumps(meta, indent=1, default=float))
    if tok is not None:
        tok.save_pretrained(out)
    return out


def _empty_model(path: Path, meta: dict, dtype: torch.dtype) -> nn.Module:
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    from ..models import loading  # noqa: F401  registers the native LLaDA/Dream classes

    config = AutoConfig.from_pretrained(str(path), trust_remote_code=False)
    auto = AutoModel if meta["model_type"] in ("llada", "Dream") else AutoModelForCausalLM
    return auto.from_config(config, dtype=dtype).eval()


def _match_dtypes(model: nn.Module, saved: dict) -> None:
    """Give every rebuilt parameter/buffer the dtype it was saved with (exact reload of scales, transforms)."""
    for key, tensor in saved.items():
        module_name, _, attr = key.rpartition(".")
        try:
            module = model.get_submodule(module_name)
        except AttributeError:
            continue  # load_model reports unexpected keys
        current = getattr(module, attr, None)
        if torch.is_tensor(current) and current.dtype != tensor.dtype:
            current.data = torch.empty(current.shape, dtype=tensor.dtype, device=current.device)


def load_quantized(path: Union[str, Path], device: Optional[str] = None, with_tokenizer: bool = True,
                   dequantize: bool = False):
    """(model, tok or None, recipe string) from a directory written by `save_quantized`.

    Packed layers stay packed (dequantized on the fly) unless dequantize=True (dequantized once, on load)."""
    path = Path(path)
    meta_path = path / META_FILE
    if not meta_path.exists():
        raise FileNotFoundError(f"{meta_path} not found: {path} was not written by dllmq save_quantized")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"format={meta.get('format')!r} is not supported; expected {FORMAT!r}")
    _import_serializable()
    dtype = getattr(torch, meta["dtype"])
    model = _empty_model(path, meta, dtype)
    for name, spec in meta["modules"].items():
        if spec["type"] == "QuantLinear":
            module = QuantLinear.from_config(spec["config"], dtype=dtype)
        else:
            module = build_module(spec)
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent), attr, module)  # also fills hooks that start as None
    _match_dtypes(model, load_file(str(path / WEIGHTS_FILE)))
    st_load_model(model, str(path / WEIGHTS_FILE), strict=True)
    if dequantize:
        from .backends import unpack_model
        unpack_model(model)
    if device is not None:
        model.to(device)
    tok = None
    if with_tokenizer and (path / "tokenizer_config.json").exists():
        from ..models import load_tokenizer
        tok = load_tokenizer(path)
    model.dllmq_recipe = meta.get("recipe")
    return model.eval(), tok, meta.get("recipe")
