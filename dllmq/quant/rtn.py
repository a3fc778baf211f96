"""RTN: round-to-nearest quantization, the baseline every PTQ method is compared with.

Each weight W [out, in] is fake-quantized independently (quantizer.py: per-channel or per-group,
asymmetric min-max by default, as AWQ's `pseudo_quantize_tensor` does for the "RTN g128" rows of the
AWQ paper). With a_bits < 16 every linear input is also quantized per token at run time; q_bits/kv_bits
quantize the attention matmul inputs.

No data is needed. When calibration tokens are given, the blocks are walked with the sequential engine
(quantized propagation) only to *measure* each layer's relative output error on real inputs.
"""
from __future__ import annotations

import time
from typing import Optional

import torch

from ..models.layout import ROLES
from .qlinear import QuantLinear
from .report import QuantReport, relative_output_error, relative_weight_error
from .sequential import run_sequential
from .wa import install_attention_quantizers

PROPAGATE = "quantized"
NEEDS_CALIBRATION = False
KNOBS: dict = {}


def quantize_linear(linear, recipe) -> QuantLinear:
    """One RTN QuantLinear for `linear` under `recipe` (weight quantizer + optional activation quantizer)."""
    return QuantLinear.from_linear(linear, recipe.weight_spec(), act_quantizer=recipe.act_quantizer(), method="rtn")


def apply(model, layout, recipe, calib: Optional[torch.Tensor] = None, *, device=None, batch_size: int = 8,
          roles=ROLES) -> QuantReport:
    """Quantize every block linear of `roles` in place; head, embeddings and norms stay FP."""
    report = QuantReport(recipe=str(recipe), method="rtn")

    def quantize_role(block, role, H=None, index=0, name=""):
        t0 = time.perf_counter()
        lin = block.get(role)
        q = quantize_linear(lin, recipe)
        if H is None:
            err, basis = relative_weight_error(lin.weight, q.weight), "weight"
        else:
            err, basis = relative_output_error(lin.weight, q.weight, H), "output"
        block.set(role, q)
        report.add_layer(index, role, name, err, time.perf_counter() - t0, recipe.w_bits, basis=basis)

    if calib is None:
        for block in layout.blocks:
            for role in roles:
                quantize_role(block, role, None, block.index, block.name_of(role, layout.family.blocks))
    else:
        def process(ctx):
            # 1. input statistics of every linear on this block's (already quantized-upstream) inputs
            stats = ctx.collect_hessians(roles)
            # 2. round each weight to the nearest grid point
            for role in roles:
                quantize_role(ctx.block, role, stats[role].H, ctx.index, ctx.name_of(role))

        run_sequential(model, layout, calib, process, propagate=PROPAGATE, report=report, device=device,
                       batch_size=batch_size, desc="rtn")
    where = install_attention_quantizers(layout, recipe.q_bits, recipe.kv_bits, sym=recipe.a_sym, clip_ratio=recipe.a_clip)
    if where != "none":
        report.add_event(f"attention inputs quantized at q={recipe.q_bits}, kv={recipe.kv_bits} bits: {where}")
    return report
