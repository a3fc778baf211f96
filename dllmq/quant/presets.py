"""Presets: the paper's configuration of every method, and the one fitter that adapts it to a model.

The paper (arXiv 2508.14896, Sec. 4.1 and App. A; `reference/paper.md` §2.3) runs each method at fixed
settings with fixed quantizers and calibration sets:

    method        settings             weights / activations                 calibration
    gptq          W4A16 g128, W3A16    asymmetric per group                  WikiText-2, 128 x 2048, seed 0
    awq           W4A16 g128, W3A16    asymmetric per group                  PileVal, 128 x 512, seed 42
    smoothquant   W8A8, W4A4           asym per channel / per token, Q K V   WikiText-2, 128 x 2048, seed 2
    quarot        W8A8, W4A4           sym, MSE clip / sym per token, K V    WikiText-2, 128 x 2048, seed 0
    duquant       W8A8, W4A4           asym clip 0.8 / clip 0.9, Q K V       WikiText-2, 128 x 2048, seed 2
    rtn           all four             asymmetric (not in the paper: the baseline)

`METHOD_DEFAULTS` holds the quantizer and calibration columns (the values a `Recipe` takes for fields it
is not given); each method's own `KNOBS` (in its module) hold its algorithm's knobs. `paper_changes` adds
what depends on the setting (attention inputs at the activation bits) and on the variant:
    variant="paper"  what the paper states (the default)
    variant="code"   what the released code (FelixMessi/QDLM) runs where it differs:
                     gptq: symmetric with AutoGPTQ's unsigned grid (sym, conv=gptq);
                     quarot: calibration windows of 4096 tokens (model.seqlen = 4096);
                     duquant: the greedy rotation picks the row of the [-1, b] view (greedy_index=row)
Details the paper leaves open follow the code in both variants (DuQuant/SmoothQuant calibration seed 2 and
QDLM's smoothing rule, smoothquant.RULES["qdlm"]; Q/K/V attention inputs quantized at the activation bits for
SmoothQuant and DuQuant, K/V for QuaRot). Known code quirk not modelled: QDLM's AutoGPTQ LLaDA definition
names q/k/v `attn_q/k/v`, which leaves them unquantized (reference/ptq.md §L.4; docs/fidelity.md).

Weight grid of each preset (quantizer.py; "asym" is the paper's Eq. 1, "include 0" widens [min, max] to
contain 0 as IST gptq does; "signed" is absmax/(2^(b-1)-1) on -2^(b-1)..2^(b-1)-1, "gptq" the unsigned grid
2·absmax/(2^b-1) with the zero at 2^(b-1)):
    rtn           asym, per group or channel
    gptq          paper: asym + include 0 (IST `Quantizer`);  code: sym, "gptq" grid (AutoGPTQ sym=True)
    awq           asym per group (llm-awq `pseudo_quantize_tensor`, zero_point=True)
    smoothquant   asym per channel (QDLM runs DuQuant's code, asymmetric)
    quarot        sym, "signed" grid (QuaRot `WeightQuantizer`), MSE clip search, include 0 for GPTQ
    duquant       asym per channel with min and max times 0.8 (swc)
Activations are per token: asymmetric (RTN, SmoothQuant, DuQuant x 0.9), symmetric "signed" (QuaRot).

`fit(recipe, model)` is the single place where a preset meets a model whose sizes the paper's settings do
not divide (SmolLM2, the tiny models). Every change is an explicit field of the returned recipe, so it
prints with it and keys the results store; nothing falls back silently inside a method:
    group size       the largest of 128, 64, 32, 16, 8 (at most the preset's) dividing every linear input
    duquant          block_size: the largest of 128, 64, ..., 4 dividing every linear input
    quarot           hadamard_fallback="orthogonal" where a rotated size (hidden, MLP, head dim, head count)
                     has no Hadamard matrix (SmolLM2: 9 heads)
    calibration      a kit tiny model calibrates on its own corpus: calib=tiny, 16 x 128, seed 0
`Recipe.paper(method, setting, model=...)` calls it; so do the demo, the sweeps, the benchmarks and the
notebook helpers, which is what makes "the RTN W4A4 baseline of the tiny model" one recipe string.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Optional

from ..calibration import CalibSpec
from .hadamard import is_supported

PAPER_SETTINGS = ("w4a16g128", "w3a16g128", "w8a8", "w4a4")
PAPER_METHOD_SETTINGS = {
    "rtn": PAPER_SETTINGS,  # not in the paper: baseline presets
    "gptq": ("w4a16g128", "w3a16g128"),
    "awq": ("w4a16g128", "w3a16g128"),
    "smoothquant": ("w8a8", "w4a4"),
    "quarot": ("w8a8", "w4a4"),
    "duquant": ("w8a8", "w4a4"),
}
VARIANTS = ("paper", "code")

_WIKI = CalibSpec("wikitext2", 128, 2048, 0)
# The paper's quantizer and calibration configuration of each method (Recipe fields other than bits/group).
METHOD_DEFAULTS: dict = {
    "rtn": dict(calib=_WIKI),
    "gptq": dict(calib=_WIKI),
    "awq": dict(calib=CalibSpec("pileval", 128, 512, 42)),
    "smoothquant": dict(calib=replace(_WIKI, seed=2)),
    "quarot": dict(w_sym=True, a_sym=True, w_clip="mse", calib=_WIKI),
    "duquant": dict(w_clip=0.8, a_clip=0.9, calib=replace(_WIKI, seed=2)),
}
FIELD_DEFAULTS = {"w_sym": False, "a_sym": False, "w_clip": 1.0, "a_clip": 1.0}  # for every method

TINY_CALIB = CalibSpec("tiny", 16, 128, 0)  # 2048 tokens: plenty for widths <= 256
GROUP_SIZES = (128, 64, 32, 16, 8)
BLOCK_SIZES = (128, 64, 32, 16, 8, 4)


def method_defaults(method: str) -> dict:
    """The Recipe fields `method` takes when they are not given (the paper's configuration)."""
    return {**FIELD_DEFAULTS, **METHOD_DEFAULTS[method]}


def check_paper_setting(method: str, setting: str, variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r} is unknown; allowed: {VARIANTS}")
    allowed = PAPER_METHOD_SETTINGS[method]
    if setting not in allowed:
        raise ValueError(f"setting={setting!r}: the paper runs {method} only at {allowed}")


def paper_changes(recipe, variant: str = "paper") -> dict:
    """Recipe fields the paper sets beyond the method defaults, for `recipe`'s method and bits."""
    changes: dict = {}
    if recipe.method in ("smoothquant", "duquant"):
        changes.update(q_bits=recipe.a_bits, kv_bits=recipe.a_bits)
    if recipe.method == "quarot":
        changes.update(kv_bits=recipe.a_bits)
    if variant == "code":
        if recipe.method == "gptq":
            changes.update(w_sym=True, sym_convention="gptq")
        if recipe.method == "quarot":
            changes.update(calib=replace(recipe.calib, seq_len=4096))
        if recipe.method == "duquant":
            changes.update(knobs={**dict(recipe.knobs), "greedy_index": "row"})
    return changes


# ----------------------------------------------------------------------------- fitting to a model


@dataclass(frozen=True)
class ModelSizes:
    """The sizes a preset must divide: every block linear's input width, the head geometry."""

    hidden: int
    intermediate: int
    head_dim: int
    n_heads: int
    in_features: tuple
    tiny: bool  # a kit tiny model: calibrates on its own corpus


def sizes_of_layout(layout, tiny: bool) -> ModelSizes:
    widths = tuple(sorted({lin.in_features for block in layout.blocks for lin in block.linears.values()}))
    return ModelSizes(layout.hidden_size, layout.intermediate_size, layout.head_dim, layout.n_heads, widths, tiny)


@lru_cache(maxsize=8)
def _sizes_of_name(name: str) -> Optional[ModelSizes]:
    from ..models import get_layout, is_tiny, load_model

    if not is_tiny(name):
        return None  # a paper-sized hub model: the paper's settings divide it (and nothing is downloaded here)
    net, _ = load_model(name, device="cpu")
    return sizes_of_layout(get_layout(net), tiny=True)


def model_sizes(model) -> Optional[ModelSizes]:
    """Sizes of a model (an nn.Module) or of a model name; None for a paper-sized hub id."""
    if isinstance(model, str):
        return _sizes_of_name(model)
    from ..models import get_layout, is_tiny

    return sizes_of_layout(get_layout(model), tiny=is_tiny(model))


def _largest_dividing(candidates, widths, at_most: int) -> Optional[int]:
    return next((c for c in candidates if c <= at_most and all(w % c == 0 for w in widths)), None)


def fit(recipe, model):
    """`recipe` adapted to `model`'s sizes (see the module docstring); unchanged when they fit."""
    sizes = model_sizes(model)
    if sizes is None:
        return recipe
    changes: dict = {}
    if sizes.tiny:
        changes["calib"] = TINY_CALIB
    if recipe.group_size is not None:
        group = _largest_dividing(GROUP_SIZES, sizes.in_features, recipe.group_size)
        if group is None:
            raise ValueError(f"no group_size in {GROUP_SIZES} up to {recipe.group_size} divides the model's linear "
                             f"input widths {sizes.in_features}")
        if group != recipe.group_size:
            changes["group_size"] = group
    knobs = dict(recipe.knobs)
    if recipe.method == "duquant":
        block = _largest_dividing(BLOCK_SIZES, sizes.in_features, int(knobs["block_size"]))
        if block is None:
            raise ValueError(f"no DuQuant block_size in {BLOCK_SIZES} divides the model's linear input widths "
                             f"{sizes.in_features}")
        knobs["block_size"] = block
    rotated = (sizes.hidden, sizes.intermediate, sizes.head_dim, sizes.n_heads)
    if recipe.method == "quarot" and not all(is_supported(n) for n in rotated):
        knobs["hadamard_fallback"] = "orthogonal"
    if knobs != dict(recipe.knobs):
        changes["knobs"] = knobs
    return recipe.with_(**changes) if changes else recipe
