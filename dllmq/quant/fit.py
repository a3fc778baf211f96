"""Fit a paper preset to a model whose sizes the paper's settings do not divide (SmolLM2, the tiny models).

    fit_recipe("duquant", "w4a4", model)  ->  Recipe with block_size 64 on SmolLM2 (576 = 9 x 64)

The changes are explicit fields of the returned recipe (so they print with it), never silent fallbacks
inside a method: a group size that does not divide the hidden and MLP sizes becomes the largest of 64, 32,
... that does (SmolLM2: g128 -> g64); DuQuant's block size becomes the largest of 128, 64, ... that divides both the hidden and
the MLP size; QuaRot gets hadamard_fallback="orthogonal" where a rotated size (hidden, MLP, head dim, head count; SmolLM2
has 9 heads) has no Hadamard matrix.
"""
from __future__ import annotations

from typing import Optional

from .hadamard import is_supported
from .recipe import Recipe

BLOCK_SIZES = (128, 64, 32, 16, 8)


def fit_recipe(method: str, setting: str, model, rotation_steps: Optional[int] = None) -> Recipe:
    """The paper preset of `method` at `setting` ("w4a4", "w4a16g128", ...) adapted to `model`'s sizes.

    RTN has no paper preset: it is the plain recipe string "rtn:<setting>"."""
    from ..models import get_layout

    recipe = Recipe.parse(f"rtn:{setting}") if method == "rtn" else Recipe.paper(method, setting)
    layout = get_layout(model)
    dims = (layout.hidden_size, layout.intermediate_size)
    changes = {}
    if recipe.group_size is not None and any(d % recipe.group_size for d in dims):
        fitting = [g for g in BLOCK_SIZES if g < recipe.group_size and all(d % g == 0 for d in dims)]
        if not fitting:
            raise ValueError(f"no group_size below {recipe.group_size} divides the model's sizes {dims}")
        changes["group_size"] = fitting[0]
    knobs = dict(recipe.knobs)
    if method == "duquant":
        fitting = [b for b in BLOCK_SIZES if all(d % b == 0 for d in dims)]
        if not fitting:
            raise ValueError(f"no DuQuant block_size in {BLOCK_SIZES} divides the model's sizes {dims}")
        knobs["block_size"] = min(int(knobs.get("block_size", 128)), fitting[0])
        if rotation_steps is not None:
            knobs["rotation_steps"] = rotation_steps
    sizes = (layout.hidden_size, layout.intermediate_size, layout.head_dim, layout.n_heads)
    if method == "quarot" and not all(is_supported(n) for n in sizes):
        knobs["hadamard_fallback"] = "orthogonal"
    return recipe.with_(knobs=knobs, **changes)
