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
           "QuantReport", "METHODS", "register_module", "quantized_linears", "check_fits", "check_calib",
           "save_quantized", "load_quantized"]


def __getattr__(name: str):  # save/load pull in safetensors and the backends only when used
    if name in ("save_quantized", "load_quantized"):
        from . import save
        return getattr(save, name)
    raise AttributeError(f"module 'dllmq.quant' has no attribute {name!r}")


def check_fits(layout, recipe: Recipe) -> None:
    """Clear error when the recipe cannot quantize this model, before any module changes: a group size not
    dividing every in_features, a DuQuant block size not dividing a linear input, a size QuaRot must rotate
    with no Hadamard matrix and no fallback, a head-dim Q/K rotation of a head size without a Hadamard matrix."""
    from .hadamard import UnsupportedHadamardSize, is_supported, largest_hadamard_divisor

    linears = [(block.index, role, lin) for block in layout.blocks for role, lin in block.linears.items()]
    widths = sorted({lin.in_features for _, _, lin in linears})
    if recipe.group_size is not None:
        for index, role, lin in linears:
            if lin.in_features % recipe.group_size:
                raise ValueError(f"group_size={recipe.group_size} does not divide in_features={lin.in_features} of "
                                 f"block {index} role {role!r}; pick a divisor of every in_features {widths}")
    if recipe.method == "duquant":
        size = int(recipe.knob("block_size"))
        for index, role, lin in linears:
            if size < lin.in_features and lin.in_features % size:
                divisors = [d for d in (128, 64, 32, 16, 8, 4) if all(w % d == 0 for w in widths)]
                raise ValueError(f"knob block_size={size} must divide the input size {lin.in_features} of block "
                                 f"{index} role {role!r} (or be >= it: one block); pick a divisor of every "
                                 f"in_features {widths}" + (f", e.g. {divisors[0]}" if divisors else ""))
    if recipe.method == "quarot":
        fallback = recipe.knob("hadamard_fallback")
        sizes = {"head_dim": layout.head_dim, "n_heads": layout.n_heads, "intermediate_size": layout.intermediate_size}
        if recipe.knob("rotation") == "hadamard":
            sizes = {"hidden_size": layout.hidden_size, **sizes}
        for what, n in sizes.items():
            rotatable = is_supported(n) or fallback == "orthogonal" or (
                fallback == "block" and largest_hadamard_divisor(n) > 1)
            if not rotatable:
                raise UnsupportedHadamardSize(
                    f"QuaRot must rotate {what}={n}, which has no Hadamard matrix, and hadamard_fallback={fallback!r} "
                    "gives none; set hadamard_fallback='orthogonal' (or 'block' where a Hadamard order > 1 divides "
                    "it), or take Recipe.paper('quarot', setting, model=model), which fits it")
    rotates_qk = recipe.method in ("quarot", "duquant") and (recipe.q_bits < 16 or recipe.kv_bits < 16)
    if rotates_qk and layout.blocks and layout.blocks[0].attention is not None and not is_supported(layout.head_dim):
        raise UnsupportedHadamardSize(
            f"head_dim={layout.head_dim} has no Hadamard matrix, but {recipe.method} rotates Q and K by a head-dim "
            f"Hadamard before quantizing the attention inputs (q_bits={recipe.q_bits}, kv_bits={recipe.kv_bits}) and "
            "no fallback applies there; keep q and kv at 16 for this model")


def check_calib(calib, layout, model: Optional[nn.Module] = None) -> torch.Tensor:
    """Calibration token ids (n, T) checked against the model: integer dtype, 2-D, not empty, every id in the
    vocabulary, T within the maximum sequence length. Returns them as a LongTensor."""
    if not torch.is_tensor(calib):
        raise TypeError(f"calib must be a LongTensor (n, T) of token ids, got {type(calib).__name__}; "
                        "e.g. dllmq.get_calibration(...) or torch.tensor(tok(texts).input_ids)")
    if calib.dtype == torch.bool or calib.is_floating_point() or calib.is_complex():
        raise TypeError(f"calib has dtype {calib.dtype}; it must hold integer token ids (torch.long), shape (n, T)")
    if calib.dim() != 2:
        raise ValueError(f"calib has shape {tuple(calib.shape)}; it must be (n, T): n sequences of T token ids")
    if calib.numel() == 0:
        raise ValueError(f"calib is empty (shape {tuple(calib.shape)}); it needs at least one sequence of one token")
    vocab = layout.embed.num_embeddings
    lo, hi = int(calib.min()), int(calib.max())
    if lo < 0 or hi >= vocab:
        raise ValueError(f"calib holds token ids in [{lo}, {hi}], but the model's vocabulary has {vocab} ids "
                         f"(0..{vocab - 1}); encode the calibration text with this model's tokenizer")
    from ..decoding import max_sequence_length

    limit = max_sequence_length(model if model is not None else layout.model)
    if limit is not None and calib.shape[1] > limit:
        raise ValueError(f"calib sequences have T={calib.shape[1]} tokens, more than the model's maximum sequence "
                         f"length {limit}; use seq_len <= {limit} (recipe option len=)")
    return calib.long()


def _check_options(recipe: Recipe, options: dict, batch_size, device) -> None:
    from ..models.layout import ROLES
    from ..models.loading import check_device

    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise TypeError(f"batch_size={batch_size!r} must be a positive int (calibration sequences per forward)")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be a positive int (calibration sequences per forward)")
    check_device(device)
    if "roles" in options:
        roles = options["roles"]
        if isinstance(roles, str) or not isinstance(roles, (tuple, list)):
            raise TypeError(f"roles={roles!r} must be a tuple of role names; allowed: {list(ROLES)}")
        bad = [r for r in roles if r not in ROLES]
        if bad or not roles or len(set(roles)) != len(roles):
            raise ValueError(f"roles={tuple(roles)!r} must name each role at most once, at least one; "
                             f"allowed: {list(ROLES)}")


def method_options(method: str) -> tuple:
    """Keyword options `method`'s apply takes beyond (model, layout, recipe, calib)."""
    params = list(inspect.signature(get_method(method).apply).parameters.values())[4:]
    return tuple(p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))


def quantize(model: nn.Module, recipe: Union[str, Recipe], calib: Optional[torch.Tensor] = None, *, tok=None,
             device=None, batch_size: int = 8, inplace: bool = False, backend: str = "fake", **options) -> tuple:
    """Quantize a copy of `model` (or `model` itself with inplace=True) with `recipe`; returns (model, QuantReport).

    calib: calibration token ids (n, T). When None and the method needs calibration, `tok` is used to draw
    `recipe.calib` with dllmq.get_calibration. device: where blocks compute (CPU models stream to a GPU).
    options: extra keywords of the method (e.g. roles= for rtn); an unknown one is an error.
    backend: "fake" (quantize-dequantize in float, the reference) or "kernel" (then `kernels.to_kernel`: real
    int8 GEMMs for W<=8A<=8 per-channel recipes, the int4 weight-pack matmul for W<=4A16 g32..256).
    Embeddings, the final norm and the LM head stay in full precision.
    Every input is checked before the first module changes (the recipe, the options, `check_calib`: dtype,
    shape, token ids, length; `check_fits`: the sizes each transform needs), so a refused call leaves `model`
    exactly as it was, also with inplace=True."""
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
    if backend not in ("fake", "kernel"):
        raise ValueError(f"backend={backend!r} is unknown; allowed: 'fake', 'kernel'")
    _check_options(recipe, options, batch_size, device)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model={model!r} must be a torch nn.Module (e.g. from dllmq.load_model), not a "
                        f"{type(model).__name__}")
    layout = get_layout(model)
    check_fits(layout, recipe)  # everything below the first module change is checked before it
    if calib is not None:
        calib = check_calib(calib, layout, model)
    elif needs_calibration(recipe.method):
        if tok is None:
            raise ValueError(f"method {recipe.method!r} needs calibration data: pass calib= (LongTensor (n, T)) "
                             f"or tok= to draw {recipe.calib} with dllmq.get_calibration")
        if not callable(tok):
            raise TypeError(f"tok={tok!r} must be the model's tokenizer (from dllmq.load_model), used to draw "
                            f"{recipe.calib}")
        from ..calibration import calibration_for
        calib = check_calib(calibration_for(recipe, tok), layout, model)
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
    if backend == "kernel":
        from .kernels import to_kernel
        to_kernel(model)
    return model, report
