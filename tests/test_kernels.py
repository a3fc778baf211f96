"""Kernel backend: real int8 GEMMs / int4 weight-pack matmuls give the fake-quant numbers.

Tolerances (stated, measured ~2e-7 / ~3e-3 on these models):
* one layer on the same input, W8A8 and W4A16 in float32: max |y_kernel - y_fake| <= 1e-5 max |y_fake|
  (int32 accumulation is exact; the fake path's float32 sums round);
* whole-model logits, W4A16 float32: relative L2 error <= 1e-5; W4A16 bfloat16 activations: <= 1e-2
  (bf16 rounding of x and of the scales, what any BF16 model has);
* whole-model logits, W8A8: <= 1e-2. Every layer is exact to 1e-7, but a 1e-7 difference can move a value
  across a rounding boundary of a later quantizer (activation or K/V code), which then differs by one step.
"""
import copy

import pytest
import torch
import torch.nn as nn

import dllmq
from dllmq.eval import category_summary
from dllmq.models import get_layout
from dllmq.quant import ActQuantizer, QuantLinear, QuantSpec, quantize
from dllmq.quant.backends import weight_memory
from dllmq.quant.kernels import Int4WeightLinear, Int8Linear, kernel_linear, to_kernel
from dllmq.quant.save import load_quantized, save_quantized

CALIB = torch.randint(4, 100, (4, 32), generator=torch.Generator().manual_seed(0))
IDS = torch.randint(4, 100, (2, 24), generator=torch.Generator().manual_seed(1))
W8A8 = ["rtn:w8a8", "smoothquant:w8a8", "quarot:w8a8"]
W4A16 = ["gptq:w4a16g32:act_order", "awq:w4a16g64:n_grid=5,clip_grid=5", "rtn:w4a16"]


def _rel(a, b):
    return ((a - b).pow(2).sum() / b.pow(2).sum()).sqrt().item()


def _logits(model):
    with torch.no_grad():
        return model(input_ids=IDS).logits


@pytest.mark.parametrize("recipe", W8A8 + W4A16)
@pytest.mark.parametrize("family", ["llada", "dream", "llama"])
def test_kernel_matches_fake(family, recipe, request):
    model, _ = request.getfixturevalue(f"tiny_{family}")
    fake, _ = quantize(model, recipe, CALIB)
    weight_only = "a16" in recipe
    for block in get_layout(fake).blocks:  # every layer on the same input
        for role, lin in block.linears.items():
            layer = kernel_linear(lin, compute_dtype="float32")
            assert isinstance(layer, Int4WeightLinear if weight_only else Int8Linear), (block.index, role)
            x = 3 * torch.randn(2, 17, lin.in_features)
            with torch.no_grad():
                ref, out = lin(x), layer(x)
            assert out.shape == ref.shape and out.dtype == ref.dtype
            assert (out - ref).abs().max() <= 1e-5 * ref.abs().max(), (block.index, role)
    ref = _logits(fake)
    for dtype, tol in ([("float32", 1e-5), ("bfloat16", 1e-2)] if weight_only else [("bfloat16", 1e-2)]):
        kernel = copy.deepcopy(fake)
        assert to_kernel(kernel, compute_dtype=dtype) == 14
        assert _rel(_logits(kernel), ref) <= tol, dtype


@pytest.mark.parametrize("recipe", ["rtn:w8a8:sym,a_sym", "rtn:w4a4", "rtn:w4a8:aclip=0.9", "duquant:w8a8:block_size=16",
                                    "rtn:w4a16g32:sym,conv=gptq", "gptq:w4a16:act_order"])
def test_other_grids_match(recipe, tiny_llada):
    """Symmetric and asymmetric grids, 4-bit codes in the int8 GEMM (W4A4, no native int4 x int4 kernel here),
    clipped activations, DuQuant's permute+rotate transforms, the GPTQ symmetric convention, per-channel act-order."""
    model, _ = tiny_llada
    fake, _ = quantize(model, recipe, CALIB)
    kernel, _ = quantize(model, recipe, CALIB, backend="kernel")
    for block, kblock in zip(get_layout(fake).blocks, get_layout(kernel).blocks):
        for role, lin in block.linears.items():
            x = torch.randn(33, lin.in_features)
            layer = kblock.get(role)
            tol = 1e-2 if isinstance(layer, Int4WeightLinear) else 1e-5  # bf16 activations / exact int8 GEMM
            with torch.no_grad():
                ref = lin(x)
                assert (layer(x) - ref).abs().max() <= tol * ref.abs().max(), role
    assert _rel(_logits(kernel), _logits(fake)) <= 2e-2


def test_int8_layer_is_exact_integer_arithmetic():
    """Symmetric signed W8A8: y = s_x s_w sum(q_x q_w) exactly (checked in float64) for a wide layer."""
    torch.manual_seed(0)
    lin = QuantLinear.from_linear(nn.Linear(1024, 48), QuantSpec(8, sym=True),
                                  act_quantizer=ActQuantizer(8, sym=True))
    layer = Int8Linear.from_quantlinear(lin)
    x = torch.randn(40, 1024)
    s_x = x.abs().amax(1, keepdim=True) / 127
    q_x = torch.round(x / s_x).clamp(-128, 127).double()
    exact = (q_x @ (lin.weight.double() / lin.w_scale.double()).round().t()) * s_x.double() * lin.w_scale.double().t()
    with torch.no_grad():
        assert ((layer(x).double() - exact - lin.bias.double()).abs().max() / exact.abs().max()) < 1e-6


@pytest.mark.parametrize("recipe", ["rtn:w8a8", "rtn:w4a16g128"])
def test_tinybench_scores_equal(recipe, tiny_trained):
    """TinyBench on the trained tiny model: the kernel path scores the fake path's items (<= 1 item per task
    may flip: bf16 activations / rounding-boundary code flips change a near-tie)."""
    model, tok = tiny_trained
    fake, _ = quantize(model, recipe)
    kernel, _ = quantize(model, recipe, backend="kernel")
    assert all(type(l).__name__ in ("Int8Linear", "Int4WeightLinear")
               for b in get_layout(kernel).blocks for l in b.linears.values())
    limit = 16
    scores = [category_summary(dllmq.evaluate(m, tok, tasks=["tinybench"], limit=limit, progress=False))
              .set_index("category")["value"] for m in (fake, kernel)]
    for category in scores[0].index:
        assert abs(scores[0][category] - scores[1][category]) * limit <= 1 + 1e-9, (category, scores)


@pytest.mark.parametrize("recipe", ["quarot:w8a8", "gptq:w4a16g32:act_order", "rtn:w4a8:kv=8"])
def test_save_load_and_deepcopy(recipe, tiny_llada, tmp_path):
    model, tok = tiny_llada
    kernel, report = quantize(model, recipe, CALIB, backend="kernel")
    ref = _logits(kernel)
    assert torch.equal(_logits(copy.deepcopy(kernel)), ref)
    out = save_quantized(kernel, tmp_path / "k", tok=tok, report=report)
    loaded, _, recipe_str = load_quantized(out)
    assert recipe_str == str(kernel.dllmq_recipe)
    kinds = {type(l).__name__ for b in get_layout(loaded).blocks for l in b.linears.values()}
    assert kinds == {"Int4WeightLinear" if "a16" in recipe else "Int8Linear"}
    assert torch.equal(_logits(loaded), ref)


def test_weight_memory_goals(tiny_trained):
    """int4 g128 kernel layout <= 30% of BF16 weight bytes; int8 <= 27% of FP32 (1 byte + 3 floats per row)."""
    model, _ = tiny_trained
    fp32 = weight_memory(model)
    k4, _ = quantize(model, "rtn:w4a16g128", backend="kernel")
    k8, _ = quantize(model, "rtn:w8a8", backend="kernel")
    assert weight_memory(k4) <= 0.30 * fp32 / 2
    assert weight_memory(k8) <= 0.27 * fp32


def test_bad_inputs(tiny_llada):
    model, _ = tiny_llada
    with pytest.raises(ValueError, match="backend"):
        quantize(model, "rtn:w8a8", backend="int8")
    fake, _ = quantize(model, "rtn:w4a16g32")
    with pytest.raises(ValueError, match="compute_dtype"):
        to_kernel(fake, compute_dtype="float16")
    cases = {"rtn:w4a16g16": "group_size=16", "rtn:w8a16": "w_bits=8", "rtn:w8a8g32": "per-channel"}
    for recipe, message in cases.items():
        bad, _ = quantize(model, recipe)
        before = {n: type(m).__name__ for n, m in bad.named_modules()}
        with pytest.raises(ValueError, match=message):
            to_kernel(bad)
        assert {n: type(m).__name__ for n, m in bad.named_modules()} == before  # untouched on error
    grouped = QuantLinear.from_linear(nn.Linear(64, 8), QuantSpec(8), act_quantizer=ActQuantizer(8, group_size=16))
    with pytest.raises(ValueError, match="group_size=16"):
        kernel_linear(grouped)
    off_grid = QuantLinear.from_linear(nn.Linear(64, 8), QuantSpec(4, granularity="group", group_size=32))
    off_grid.weight.data += 1e-3
    with pytest.raises(ValueError, match="not on the grid"):
        kernel_linear(off_grid)
    with pytest.raises(TypeError, match="QuantLinear"):
        kernel_linear(nn.Linear(64, 8))
