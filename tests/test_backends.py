"""Storage backends: packed int4 is exact, save -> load gives identical outputs, bitsandbytes swaps, memory."""

import pytest
import torch
import torch.nn as nn

from dllmq.models import get_layout
from dllmq.quant import QuantLinear, quantize
from dllmq.quant.backends import (PackedLinear, bnb_quantize, dequantize_packed, memory_table, pack_codes, pack_int4,
                                  pack_model, unpack_int4, weight_memory)
from dllmq.quant.quantizer import QuantSpec
from dllmq.quant.save import load_quantized, save_quantized


def test_pack_unpack_round_trip():
    codes = torch.randint(0, 16, (5, 12), dtype=torch.uint8)
    packed = pack_int4(codes)
    assert packed.shape == (5, 6) and packed.dtype == torch.uint8
    assert torch.equal(unpack_int4(packed), codes)
    assert packed[0, 0].item() == codes[0, 0].item() | (codes[0, 1].item() << 4)
    with pytest.raises(ValueError, match="even"):
        pack_int4(codes[:, :3])


@pytest.mark.parametrize("spec", [
    QuantSpec(bits=4, granularity="group", group_size=16), QuantSpec(bits=3),
    QuantSpec(bits=4, sym=True), QuantSpec(bits=4, sym=True, sym_convention="gptq", granularity="group", group_size=8),
])
def test_packed_dequantization_is_exact(spec):
    torch.manual_seed(0)
    q = QuantLinear.from_linear(nn.Linear(32, 8), spec)
    p = pack_codes(q)
    assert torch.equal(dequantize_packed(p["qweight"], p["scales"], p["zeros"], p["g_idx"]), q.weight)
    exact = PackedLinear.from_quantlinear(q, scale_dtype="float32")
    half = PackedLinear.from_quantlinear(q)
    x = torch.randn(3, 32)
    assert torch.equal(exact(x), q(x))
    assert torch.allclose(half(x), q(x), rtol=2e-3, atol=1e-3)  # fp16 scales: ~2^-11 relative per weight


def test_gptq_act_order_packs_with_g_idx(tiny_llada):
    model, _ = tiny_llada
    quantize(model, "gptq:w4a16g32:act_order", torch.randint(4, 100, (4, 32)), inplace=True)
    lin = get_layout(model).blocks[0].get("down")
    assert lin.g_idx is not None
    p = pack_codes(lin)
    assert torch.equal(dequantize_packed(p["qweight"], p["scales"], p["zeros"], p["g_idx"]), lin.weight)


def test_pack_refuses_what_it_cannot_store():
    q = QuantLinear.from_linear(nn.Linear(8, 4), QuantSpec(bits=8))
    with pytest.raises(ValueError, match="cannot be packed"):
        pack_codes(q)


@pytest.mark.parametrize("family, recipe", [("llada", "gptq:w4a16g32:act_order"), ("dream", "awq:w3a16g32:n_grid=5,clip_grid=10"),
                                            ("llama", "rtn:w4a8:kv=8")])
def test_save_load_identical_outputs(family, recipe, request, tmp_path):
    model, tok = request.getfixturevalue(f"tiny_{family}")
    model, report = quantize(model, recipe, torch.randint(4, 100, (4, 32)), inplace=True)
    ids = torch.randint(4, 100, (2, 24))
    with torch.no_grad():
        ref = model(input_ids=ids).logits
    for packed in (False, True):
        out = save_quantized(model, tmp_path / str(packed), tok=tok, report=report, packed=packed)
        assert (out / "model.safetensors").exists() and not list(out.glob("*.bin"))
        loaded, tok2, recipe_str = load_quantized(out)
        eager, _, _ = load_quantized(out, dequantize=True)
        with torch.no_grad():
            assert torch.equal(loaded(input_ids=ids).logits, ref)
            assert torch.equal(eager(input_ids=ids).logits, ref)
        assert all(isinstance(l, QuantLinear) for b in get_layout(eager).blocks for l in b.linears.values())
        assert recipe_str == str(model.dllmq_recipe) and tok2 is not None
        kind = type(get_layout(loaded).blocks[0].get("up")).__name__
        assert kind == ("PackedLinear" if packed and recipe != "rtn:w4a8:kv=8" else "QuantLinear")


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="dllmq_quant.json"):
        load_quantized(tmp_path)


def test_pack_model_and_memory(tiny_llada):
    model, _ = tiny_llada
    fp_bytes = weight_memory(model)
    quantize(model, "rtn:w4a16g32", inplace=True)
    assert weight_memory(model) == fp_bytes  # fake-quant keeps float weights
    assert pack_model(model) == 14
    assert weight_memory(model) < fp_bytes / 5


@pytest.mark.parametrize("fmt, tol", [("nf4", 0.05), ("int8", 1e-3)])
def test_bitsandbytes_swap_on_cpu(fmt, tol, tiny_llada):
    model, _ = tiny_llada
    ids = torch.randint(4, 100, (2, 16))
    with torch.no_grad():
        ref = model(input_ids=ids).logits
    fp_bytes = weight_memory(model)
    bnb_quantize(model, fmt)
    with torch.no_grad():
        out = model(input_ids=ids).logits
    assert ((out - ref).pow(2).sum() / ref.pow(2).sum()).item() < tol
    assert weight_memory(model) < fp_bytes / (6 if fmt == "nf4" else 3)
    with pytest.raises(ValueError, match="fmt"):
        bnb_quantize(model, "fp4x")


def test_memory_table(tiny_llada):
    model, _ = tiny_llada
    df = memory_table(model, "rtn:w4a16g32").set_index("format")
    assert list(df.index) == ["fp32", "bf16", "fake-quant", "packed-int4", "nf4", "int8"]
    assert df.loc["bf16", "vs_fp32"] == 0.5 and df.loc["fake-quant", "vs_fp32"] == 1.0
    assert df.loc["packed-int4", "bytes"] < df.loc["int8", "bytes"] < df.loc["bf16", "bytes"]
