"""Post-training quantization: one entry point, one file per method.

    recipe = Recipe.parse("gptq:w4a16g128")          # or Recipe.paper("duquant", "w4a4", model=model)
    qmodel, report = quantize(model, recipe, calib)  # calib: LongTensor (n, T), or tok= to draw recipe.calib
    print(report)                                    # per-layer relative output error and time

`quantize` returns a quantized *copy* and leaves `model` as it was, so a notebook can compare the two;
`inplace=True` quantizes `model` itself (and returns it) when memory allows no copy (an 8B model on a GPU).

Methods (registry.METHODS): rtn, gptq, awq (weight-only) and smoothquant, quarot, duquant (weight-activation).
Each module's `apply(model, layout, recipe, calib, **options) -> QuantReport` quantizes in place.
"""
from __future__ import annotations

import copy
import inspect
import time
from typing import Optional, Union

import torch
import torch.nn as nn

from .qlinear import QuantLinear, quantized_linears, register_module
from .quantizer import ActQuantizer, QuantSpec, fake_quantize
from .recipe import CalibSpec, Recipe
from .registry import METHODS, get_method, needs_calibration
from .report import QuantReport

__all__ = ["quantize", "Recipe", "CalibSpec", "QuantLinear", "QuantSpec", "ActQuantizer", "fake_quantize",
           "QuantReport", "METHODS", "register_module", "quantized_linears", "check_fits", "save_quantized",
           "load_quantized"]


def __getattr__(name: str):  # save/load pull in safetensors and the backends only when used
    if name in ("save_quantized", "load_quantized"):
        from . import save
        return getattr(save, name)
    raise AttributeError(f"module 'dllmq.quant' has no attribute {name!r}")


def check_fits(layout, recipe: Recipe) -> None:
    """Clear error when the recipe cannot quantize this model (e.g. a group size not dividing in_features)."""
    if recipe.group_size is None:
        return
    for block in layout.blocks:
        for role, lin in block.linears.items():
            if lin.in_features % recipe.group_size:
                raise ValueError(f"group_size={recipe.group_size} does not divide in_features={lin.in_features} of "
                                 f"block {block.index} role {role!r}; pick a divisor of every in_features")


def method_options(method: str) -> tuple:
    """Keyword options `method`'s apply takes beyond (model, layout, recipe, calib)."""
    params = list(inspect.signature(get_method(method).apply).parameters.values())[4:]
    return tuple(p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))


def quantize(model: nn.Module, recipe: Union[str, Recipe], calib: Optional[torch.Tensor] = None, *, tok=None,
             device=None, batch_size: int = 8, inplace: bool = False, **options) -> tuple:
    """Quantize a copy of `model` (or `model` itself with inplace=True) with `recipe`; returns (model, QuantReport).

    calib: calibration token ids (n, T). When None and the method needs calibration, `tok` is used to draw
    `recipe.calib` with dllmq.get_calibration. device: where blocks compute (CPU models stream to a GPU).
    options: extra keywords of the method (e.g. roles= for rtn); an unknown one is an error.
    Embeddings, the final norm and the LM head stay in full precision."""
    from ..models import get_layout

    recipe = Recipe.parse(recipe)
    method = get_method(recipe.method)
    allowed = method_options(recipe.method)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"quantize() got unknown option(s) {unknown} for method {recipe.method!r}; allowed: "
                        f"calib, tok, device, batch_size, inplace{''.join(', ' + a for a in allowed if a not in ('device', 'batch_size'))}")
    if not isinstance(inplace, bool):
        raise TypeError(f"inplace={inplace!r} must be a bool")
    check_fits(get_layout(model), recipe)
    if calib is None and needs_calibration(recipe.method):
        if tok is None:
            raise ValueError(f"method {recipe.method!r} needs calibration data: pass calib= (LongTensor (n, T)) "
                             f"or tok= to draw {recipe.calib} with dllmq.get_calibration")
        from ..calibration import calibration_for
        calib = calibration_for(recipe, tok)
    if not inplace:
        model = copy.deepcopy(model)
    layout = get_layout(model)
    opts = {"device": device, "batch_size": batch_size, **options}
    opts = {k: v for k, v in opts.items() if k in allowed}
    t0 = time.perf_counter()
    report = method.apply(model, layout, recipe, calib, **opts)
    if report is None:
        report = QuantReport(recipe=str(recipe), method=recipe.method)
    report.recipe, report.method = str(recipe), recipe.method
    report.total_time_s = time.perf_counter() - t0
    model.dllmq_recipe = str(recipe)
    return model, report
