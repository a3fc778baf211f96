"""Shared helpers for the quantization tests: per-layer RTN-vs-method comparisons on identical inputs."""
import copy

import torch

from dllmq.models import ROLES, get_layout
from dllmq.quant import QuantLinear
from dllmq.quant.gptq import gptq_quantize
from dllmq.quant.quantizer import fake_quantize
from dllmq.quant.report import relative_output_error
from dllmq.quant.sequential import batched_relative_error, run_sequential


def gptq_vs_rtn_layer_errors(model, calib, specs, blocks=None, **gptq_kwargs):
    """[(bits, block, role, gptq_error, rtn_error)] on the FP inputs of each layer (weights left untouched)."""
    rows = []

    def process(ctx):
        stats = ctx.collect_hessians(ROLES)
        for spec in specs:
            for role in ROLES:
                w, H = ctx.block.get(role).weight.data, stats[role].H
                g = gptq_quantize(w, H, spec, **gptq_kwargs).weight
                rows.append((spec.bits, ctx.index, role, relative_output_error(w, g, H),
                             relative_output_error(w, fake_quantize(w.float(), spec), H)))

    run_sequential(model, get_layout(model), calib, process, propagate="fp", blocks=blocks, measure_block_error=False)
    return rows


def awq_vs_rtn_block_errors(model, calib, recipe, blocks=None):
    """[(block, awq_block_error, rtn_block_error)] on the same FP block inputs (works on a deep copy)."""
    from dllmq.quant import awq

    model = copy.deepcopy(model)
    spec = recipe.weight_spec()
    rows = []

    def process(ctx):
        originals = dict(ctx.block.linears)
        for role, lin in originals.items():
            ctx.block.set(role, QuantLinear.from_linear(lin, spec))
        rtn = batched_relative_error(ctx.run(), ctx.fp_outputs)
        for role, lin in originals.items():
            ctx.block.set(role, lin)
        awq.process_block(ctx, recipe)
        rows.append((ctx.index, batched_relative_error(ctx.run(), ctx.fp_outputs), rtn))

    run_sequential(model, get_layout(model), calib, process, propagate="fp", blocks=blocks, measure_block_error=False)
    return rows


def logits_error(model_a, model_b, ids):
    with torch.no_grad():
        a, b = model_a(input_ids=ids).logits.float(), model_b(input_ids=ids).logits.float()
    return ((a - b).pow(2).sum() / b.pow(2).sum()).item()
