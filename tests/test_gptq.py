"""GPTQ: parity with RTN when H = I, error <= RTN on real layers, act-order/static groups, hard Hessians."""

import pytest
import torch

from dllmq.models import get_layout
from dllmq.quant import QuantLinear, quantize
from dllmq.quant.gptq import damped_inverse_cholesky, gptq_quantize
from dllmq.quant.quantizer import QuantSpec, fake_quantize
from dllmq.quant.report import relative_output_error
from quant_helpers import gptq_vs_rtn_layer_errors

G32 = QuantSpec(bits=4, granularity="group", group_size=32, include_zero=True)


def _correlated(n_tokens=512, d=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g) / d ** 0.5 + torch.eye(d)
    x = torch.randn(n_tokens, d, generator=g) @ mix
    x[:, 3] *= 20  # one salient channel
    return x


def test_identity_hessian_reduces_to_rtn():
    torch.manual_seed(0)
    w = torch.randn(16, 64)
    for spec in (G32, QuantSpec(bits=3, include_zero=True), QuantSpec(bits=4, sym=True, sym_convention="gptq")):
        res = gptq_quantize(w, torch.eye(64), spec)
        assert torch.allclose(res.weight, fake_quantize(w, spec), atol=1e-6)
        assert res.damp_retries == 0 and res.dead == 0


@pytest.mark.parametrize("opts", [{}, {"act_order": True}, {"act_order": True, "static_groups": True},
                                  {"static_groups": True}, {"block_size": 16}])
def test_error_feedback_beats_rtn(opts):
    torch.manual_seed(0)
    x = _correlated()
    w = torch.randn(32, 64)
    H = 2 * x.T @ x / x.shape[0]
    res = gptq_quantize(w, H, G32, **opts)
    assert relative_output_error(w, res.weight, H) < relative_output_error(w, fake_quantize(w, G32), H)
    # the dequantized weight is exactly scale * (q - zero) with the recorded parameters
    g_idx = res.g_idx if res.g_idx is not None else torch.arange(64) // 32
    s, z = res.scale[:, g_idx], res.zero[:, g_idx]
    q = torch.round(res.weight / s) + z
    assert torch.allclose(s * (q - z), res.weight, atol=1e-6) and q.min() >= 0 and q.max() <= 15


def test_act_order_dynamic_groups_record_g_idx():
    x = _correlated()
    res = gptq_quantize(torch.randn(8, 64), 2 * x.T @ x, G32, act_order=True)
    assert res.g_idx is not None and torch.bincount(res.g_idx).tolist() == [32, 32]
    assert gptq_quantize(torch.randn(8, 64), 2 * x.T @ x, G32, act_order=True, static_groups=True).g_idx is None


def test_rank_deficient_and_dead_inputs_do_not_crash():
    torch.manual_seed(0)
    x = torch.randn(10, 64)  # 10 tokens << 64 features: H has rank 10
    x[:, [5, 17]] = 0  # dead channels
    w = torch.randn(16, 64)
    res = gptq_quantize(w, 2 * x.T @ x / 10, G32)
    assert torch.isfinite(res.weight).all() and res.dead == 2
    assert torch.all(res.weight[:, [5, 17]] == 0)


def test_cholesky_failure_raises_damping_and_is_reported():
    torch.manual_seed(0)
    a = torch.randn(64, 8)
    H = a @ a.T / 8  # rank 8
    H -= 0.03 * torch.diag(H).mean() * torch.eye(64)  # slightly indefinite: Cholesky fails at damp 0.01
    res = gptq_quantize(torch.randn(8, 64), H, G32)
    assert res.damp_retries > 0 and res.damp > 0.01 and torch.isfinite(res.weight).all()
    with pytest.raises(ValueError, match="NaN"):
        damped_inverse_cholesky(torch.full((4, 4), float("nan")), 0.01)
    with pytest.raises(ValueError, match="diag"):
        damped_inverse_cholesky(-torch.eye(4), 0.01)


def test_few_tokens_through_the_whole_model(tiny_llada):
    model, _ = tiny_llada
    calib = torch.randint(4, 100, (1, 16))  # 16 tokens < 64 and < 128 input features
    model, report = quantize(model, "gptq:w4a16g32", calib, inplace=True)
    assert len(report.layers) == 14 and all(r.error == r.error for r in report.layers)
    assert any("rank-deficient" in r.notes for r in report.layers)


@pytest.mark.parametrize("family", ["llada", "dream", "llama"])
def test_gptq_layer_error_at_most_rtn_on_tiny_models(family, request):
    model, _ = request.getfixturevalue(f"tiny_{family}")
    calib = torch.randint(4, 100, (8, 64))
    specs = [QuantSpec(bits=b, granularity="group", group_size=32, include_zero=True) for b in (3, 4)]
    for bits, block, role, g, r in gptq_vs_rtn_layer_errors(model, calib, specs):
        assert g <= r, f"w{bits} block {block} {role}: gptq {g:.3e} > rtn {r:.3e}"


def test_apply_swaps_every_linear_and_keeps_head_fp(tiny_dream):
    model, _ = tiny_dream
    layout = get_layout(model)
    head, embed = layout.head.weight.clone(), layout.embed.weight.clone()
    model, report = quantize(model, "gptq:w3a16:act_order,true_sequential=false", torch.randint(4, 100, (8, 32)), inplace=True)
    assert all(isinstance(l, QuantLinear) and l.w_bits == 3 for b in layout.blocks for l in b.linears.values())
    assert torch.equal(layout.head.weight, head) and torch.equal(layout.embed.weight, embed)
    assert report.method == "gptq" and report.to_frame().shape[0] == 14 and "gptq" in str(report)


def test_gptq_needs_calibration(tiny_llada):
    model, _ = tiny_llada
    with pytest.raises(ValueError, match="calibration"):
        quantize(model, "gptq:w4a16g32")
    with pytest.raises(ValueError, match="group_size=48"):
        quantize(model, "gptq:w4a16g48", torch.randint(4, 100, (2, 8)))


@pytest.mark.slow
def test_gptq_at_most_rtn_on_smollm2_layers(smollm2):
    from dllmq.calibration import get_calibration

    model, tok = smollm2
    calib = get_calibration("text", tok, n_samples=8, seq_len=128, seed=0)  # 1024 tokens
    specs = [QuantSpec(bits=b, granularity="group", group_size=64, include_zero=True) for b in (3, 4)]
    rows = gptq_vs_rtn_layer_errors(model, calib, specs, blocks=[0, 6])
    assert len(rows) == 28
    for bits, block, role, g, r in rows:
        assert g <= r, f"w{bits} block {block} {role}: gptq {g:.3e} > rtn {r:.3e}"
    assert sum(g for *_, g, _ in rows) < 0.9 * sum(r for *_, r in rows)
