"""Save and load a quantized model: safetensors weights + JSON metadata, no pickle.

    DIR/config.json            the model config (save_pretrained)
    DIR/model.safetensors      every tensor of the state dict (fake-quant weights, scales, transforms' buffers)
    DIR/dllmq_quant.json       format, recipe, dtype, and how to rebuild every non-standard module:
                                 "modules": name -> {"type", "config"} (QuantLinear, PackedLinear, Hadamard, ...)
    DIR/tokenizer files        when a tokenizer is given

`load_quantized` rebuilds the architecture from config.json, puts back each recorded module (classes are
found through `qlinear.register_module`), then loads the tensors strictly: outputs are identical.
packed=True stores weight-only layers as PackedLinear (int4 codes, fp32 scales: still bit-exact).
Kernel-backend layers (`kernels.Int8Linear`, `Int4WeightLinear`) save their portable codes and load straight
back into the kernel layout of the machine that loads them.
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
    importlib.import_module("dllmq.quant.kernels")  # Int8Linear, Int4WeightLinear (kernel backend)


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
    _check_save_args(model, out_dir, tok, recipe, packed)
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


def _check_save_args(model, out_dir, tok, recipe, packed) -> None:
    if not isinstance(model, nn.Module) or not hasattr(getattr(model, "config", None), "save_pretrained"):
        raise TypeError(f"model={type(model).__name__} must be a transformers model with a .config (e.g. the model "
                        "dllmq.quantize returns)")
    if not isinstance(out_dir, (str, Path)):
        raise TypeError(f"out_dir={out_dir!r} must be a directory path")
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ValueError(f"out_dir={str(out_dir)!r} exists and is not a directory")
    if not isinstance(packed, bool):
        raise TypeError(f"packed={packed!r} must be a bool")
    if tok is not None and not callable(getattr(tok, "save_pretrained", None)):
        raise TypeError(f"tok={tok!r} must be a tokenizer (with save_pretrained) or None")
    if recipe is not None:
        from .recipe import Recipe
        Recipe.parse(recipe)  # a recipe that does not parse would be unreadable on load


_META_KEYS = ("format", "dtype", "model_type", "modules")


def _read_meta(path: Path) -> dict:
    """dllmq_quant.json, checked: an object with every key, the known format, a floating dtype, module entries."""
    from ..models.loading import check_dtype, read_json

    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} not found: {path} was not written by dllmq save_quantized")
    meta = read_json(meta_path, "quantization metadata")
    missing = [k for k in _META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"{meta_path} lacks {missing[0]!r}; save_quantized writes {list(_META_KEYS)} "
                         "(the metadata is incomplete or was edited)")
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path}: format={meta.get('format')!r} is not supported; expected {FORMAT!r}")
    if not isinstance(meta["dtype"], str):
        raise ValueError(f"{meta_path}: dtype={meta['dtype']!r} must be a dtype name such as 'float32'")
    meta["torch_dtype"] = check_dtype(meta["dtype"], f"{meta_path}: dtype")
    if not isinstance(meta["modules"], dict):
        raise ValueError(f"{meta_path}: modules must map module names to {{type, config}} entries")
    known = ["QuantLinear", *sorted(SERIALIZABLE)]
    for name, spec in meta["modules"].items():
        if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict) or "type" not in spec:
            raise ValueError(f"{meta_path}: modules[{name!r}]={spec!r} must be {{'type': ..., 'config': {{...}}}}")
        if spec["type"] not in known:
            raise ValueError(f"{meta_path}: modules[{name!r}] has type {spec['type']!r}, which is not registered; "
                             f"known: {known}")
    recipe = meta.get("recipe")
    if recipe is not None:
        from .recipe import Recipe
        try:
            Recipe.parse(recipe)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{meta_path}: recipe={recipe!r} is invalid: {err}") from None
    return meta


def _build(name: str, spec: dict, dtype: torch.dtype, where: Path) -> nn.Module:
    """One recorded module from its metadata; a tampered config is a clear error naming it."""
    config = spec["config"]
    try:
        if spec["type"] == "QuantLinear":
            expected = set(QuantLinear(1, 1).get_config())
            if set(config) != expected:
                extra, lacking = sorted(set(config) - expected), sorted(expected - set(config))
                raise ValueError(f"unknown keys {extra}" if extra else f"missing keys {lacking}")
            return QuantLinear.from_config(config, dtype=dtype)
        return build_module(spec)
    except (TypeError, ValueError, KeyError) as err:
        raise ValueError(f"{where}: modules[{name!r}] config is invalid ({err})") from None


def _install(model: nn.Module, name: str, module: nn.Module, where: Path) -> None:
    parent_name, _, attr = name.rpartition(".")
    try:
        parent = model.get_submodule(parent_name)
    except AttributeError:
        parent = None
    if parent is None or not hasattr(parent, attr):
        raise ValueError(f"{where}: modules[{name!r}] names no submodule of the rebuilt model (tampered metadata)")
    original = getattr(parent, attr)
    for dim in ("in_features", "out_features"):
        if hasattr(original, dim) and hasattr(module, dim) and getattr(original, dim) != getattr(module, dim):
            raise ValueError(f"{where}: modules[{name!r}] has {dim}={getattr(module, dim)} but the model's layer has "
                             f"{getattr(original, dim)} (tampered metadata)")
    setattr(parent, attr, module)  # also fills hooks that start as None


def _load_weights(model: nn.Module, weights: Path) -> None:
    """Strict load of model.safetensors: a missing, extra or mis-shaped tensor is an error naming it."""
    try:
        missing, unexpected = st_load_model(model, str(weights), strict=False)
    except RuntimeError as err:
        raise ValueError(f"{weights}: a tensor's shape does not match the model described by config.json and "
                         f"{META_FILE}: {str(err).splitlines()[-1].strip()}") from None
    if missing or unexpected:
        raise ValueError(f"{weights}: tensors missing for {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}; "
                         f"the file does not match config.json and {META_FILE}")


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
    from ..models.loading import check_config, check_device, check_safetensors, read_json

    if not isinstance(path, (str, Path)):
        raise TypeError(f"path={path!r} must be a directory written by save_quantized")
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"path={str(path)!r}: directory does not exist (write one with save_quantized)")
    check_device(device)
    for flag, value in (("with_tokenizer", with_tokenizer), ("dequantize", dequantize)):
        if not isinstance(value, bool):
            raise TypeError(f"{flag}={value!r} must be a bool")
    _import_serializable()  # the registered module classes the metadata may name
    meta = _read_meta(path)
    config = read_json(path / "config.json", "model config (save_quantized writes it)")
    check_config(config, str(path / "config.json"))
    if config.get("model_type") != meta["model_type"]:
        raise ValueError(f"{path / META_FILE}: model_type={meta['model_type']!r} but config.json says "
                         f"{config.get('model_type')!r}; one of them was edited")
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found: the quantized weights are missing")
    check_safetensors(weights)
    dtype = meta["torch_dtype"]
    model = _empty_model(path, meta, dtype)
    for name, spec in meta["modules"].items():
        _install(model, name, _build(name, spec, dtype, path / META_FILE), path / META_FILE)
    _match_dtypes(model, load_file(str(weights)))
    _load_weights(model, weights)
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
