"""Uniform quantizer: closed-form levels, zero points, clipping, granularity and clear errors."""
import pytest
import torch

from dllmq.quant.quantizer import (ActQuantizer, QuantSpec, compute_qparams, fake_quantize, find_qparams,
                                   mse_clip_search, quantize_tensor, to_rows, weight_qparams)


def test_asymmetric_closed_form_levels_and_zero():
    x = torch.tensor([[-1.0, 0.0, 0.5, 2.0]])
    qp = compute_qparams(x, QuantSpec(bits=2, granularity="channel"))
    assert qp.scale.item() == pytest.approx(1.0)  # (2 - (-1)) / 3
    assert qp.zero.item() == 1.0  # -round(-1 / 1)
    # round-half-to-even: 0.5 -> 0; levels are scale * ({0..3} - 1) = {-1, 0, 1, 2}
    assert fake_quantize(x, 2).tolist() == [[-1.0, 0.0, 0.0, 2.0]]


def test_paper_eq1_matches_direct_formula():
    torch.manual_seed(0)
    w = torch.randn(8, 256) * 0.02
    b = 4
    rows = w.reshape(-1, 128)
    s = (rows.amax(1, keepdim=True) - rows.amin(1, keepdim=True)) / (2 ** b - 1)
    z = (-torch.round(rows.amin(1, keepdim=True) / s)).clamp(0, 2 ** b - 1)
    ref = (torch.clamp(torch.round(rows / s) + z, 0, 2 ** b - 1) - z) * s  # AWQ pseudo_quantize_tensor
    out = fake_quantize(w, b, granularity="group", group_size=128)
    assert torch.equal(out, ref.reshape(w.shape))


def test_include_zero_matches_ist_gptq_quantizer():
    x = torch.tensor([[0.5, 1.0, 2.0, 3.0]])  # all positive: IST widens the range to [0, 3]
    out = fake_quantize(x, 2, include_zero=True)
    assert out.tolist() == [[0.0, 1.0, 2.0, 3.0]]  # scale 1, zero 0; 0.5 rounds to 0
    assert fake_quantize(x, 2).tolist() != out.tolist()  # paper Eq. 1 uses [0.5, 3]


def test_symmetric_signed_levels():
    x = torch.tensor([[-3.5, -1.0, 0.0, 2.0, 3.5]])
    spec = QuantSpec(bits=4, sym=True, granularity="channel")
    qp = compute_qparams(x, spec)
    assert qp.scale.item() == pytest.approx(3.5 / 7) and qp.zero.item() == 0.0
    assert (spec.qmin, spec.qmax) == (-8, 7)
    out = fake_quantize(x, 4, sym=True)
    assert out[0, -1].item() == pytest.approx(3.5) and out[0, 0].item() == pytest.approx(-3.5)


def test_symmetric_gptq_convention():
    x = torch.tensor([[-3.0, 0.0, 3.0]])
    spec = QuantSpec(bits=4, sym=True, sym_convention="gptq")
    qp = compute_qparams(x, spec)
    assert qp.scale.item() == pytest.approx(2 * 3.0 / 15) and qp.zero.item() == 8.0
    assert (spec.qmin, spec.qmax) == (0, 15)
    out = fake_quantize(x, 4, sym=True, sym_convention="gptq")
    # +absmax -> round(7.5)=8, +8 = 16 clamps to 15 -> 7 * scale; -absmax -> round(-7.5) = -8 -> -8 * scale
    assert out[0, 2].item() == pytest.approx(7 * 0.4) and out[0, 0].item() == pytest.approx(-8 * 0.4)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_number_of_levels(bits):
    x = torch.linspace(-1, 1, 5000).reshape(1, -1)
    for sym in (False, True):
        assert fake_quantize(x, bits, sym=sym).unique().numel() <= 2 ** bits


def test_clip_ratio_shrinks_range():
    x = torch.linspace(-1, 1, 101).reshape(1, -1)
    out = fake_quantize(x, 8, clip_ratio=0.5)
    step = 1.0 / 255  # the range [-0.5, 0.5] on 256 levels; the zero point shifts the grid by < 1 step
    assert out.max().item() <= 0.5 + step and out.min().item() >= -0.5 - step
    assert out.max().item() < 0.6 and fake_quantize(x, 8).max().item() > 0.99


def test_mse_clip_search_never_worse_than_minmax():
    torch.manual_seed(0)
    w = torch.randn(16, 128)
    w[0, 0] = 25.0  # an outlier row
    spec = QuantSpec(bits=3, granularity="channel")
    best = mse_clip_search(w, spec)
    plain = compute_qparams(w, spec)
    err = lambda qp: (qp.fake_quantize(w) - w).abs().pow(2.4).sum(1)
    assert torch.all(err(best) <= err(plain) + 1e-6)
    assert (best.scale <= plain.scale + 1e-9).all() and (best.scale < plain.scale).any()
    assert torch.equal(fake_quantize(w, 3, clip_ratio="mse"),
                       best.fake_quantize(w))


def test_mse_clip_search_picks_the_shrink_of_the_defining_sum():
    """The search (extents found once, |e|^2.4 as exp(2.4 log|e|)) picks, row by row, the shrink factor that
    the plain definition picks: argmin over p of sum |Q_p(x) - x|^2.4 with min-max parameters of p * range."""
    torch.manual_seed(1)
    w = torch.randn(64, 96) * torch.rand(64, 1) * 3
    w[:8, :3] *= 20  # outlier rows, where the chosen shrink is far from 1
    for spec in (QuantSpec(bits=4, granularity="channel"), QuantSpec(bits=3, granularity="channel", sym=True)):
        shrinks = [1 - i / 100 for i in range(80)]
        errors = torch.stack([(compute_qparams(w, spec, clip_ratio=p).fake_quantize(w) - w).abs().pow(2.4).sum(1)
                              for p in shrinks], 1)
        want = torch.stack([compute_qparams(w[r:r + 1], spec, clip_ratio=shrinks[int(errors[r].argmin())]).scale[0]
                            for r in range(w.shape[0])])
        got = mse_clip_search(w, spec).scale
        assert torch.equal(got, want)
        assert (got < compute_qparams(w, spec).scale).sum() >= 8


def test_granularities_shapes_and_independence():
    torch.manual_seed(0)
    w = torch.randn(4, 16)
    assert to_rows(w, "tensor").shape == (1, 64)
    assert to_rows(w, "channel").shape == (4, 16)
    assert to_rows(w, "group", 4).shape == (16, 4)
    x = torch.randn(2, 3, 16)
    assert to_rows(x, "token").shape == (6, 16)
    scale, zero = weight_qparams(w, QuantSpec(bits=4, granularity="group", group_size=4))
    assert scale.shape == zero.shape == (4, 4)
    # per-channel: scaling one row by 10 scales only that row of the output
    w2 = w.clone()
    w2[1] *= 10
    a, b = fake_quantize(w, 4), fake_quantize(w2, 4)
    assert torch.allclose(b[1], a[1] * 10, atol=1e-5) and torch.equal(a[0], b[0])
    # per-token: same for one token of an activation
    x2 = x.clone()
    x2[0, 1] *= 100
    qa, qb = fake_quantize(x, 8, granularity="token"), fake_quantize(x2, 8, granularity="token")
    assert torch.allclose(qb[0, 1], qa[0, 1] * 100, rtol=1e-4) and torch.equal(qa[1], qb[1])


def test_one_outlier_ruins_a_per_tensor_scale():
    torch.manual_seed(0)
    w = torch.randn(64, 64) * 0.02
    w[3, 7] = 2.0
    err = lambda out: ((out - w).pow(2).sum() / w.pow(2).sum()).item()
    per_tensor = err(fake_quantize(w, 4, granularity="tensor"))
    per_channel = err(fake_quantize(w, 4, granularity="channel"))
    per_group = err(fake_quantize(w, 4, granularity="group", group_size=16))
    assert per_tensor > 10 * per_channel and per_group < per_channel


def test_quantize_tensor_codes_are_integers_in_range():
    torch.manual_seed(0)
    w = torch.randn(8, 32)
    for spec in (QuantSpec(bits=3), QuantSpec(bits=4, sym=True), QuantSpec(bits=4, sym=True, sym_convention="gptq")):
        q, qp = quantize_tensor(w, spec)
        assert torch.equal(q, q.round()) and q.min() >= spec.qmin and q.max() <= spec.qmax


def test_degenerate_rows_are_exact():
    x = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5], [-2.0, -2.0, -2.0]])
    for sym in (False, True):
        assert torch.allclose(fake_quantize(x, 4, sym=sym), x)
    assert torch.isfinite(find_qparams(x, QuantSpec(bits=4)).scale).all()


def test_act_quantizer_per_token_and_identity():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 16)
    assert ActQuantizer(16)(x) is x
    aq = ActQuantizer(8, sym=True, clip_ratio=0.9)
    assert torch.equal(aq(x), fake_quantize(x, 8, sym=True, granularity="token", clip_ratio=0.9))
    assert "per-token" in repr(aq)
    with pytest.raises(ValueError, match="clip_ratio"):
        ActQuantizer(8, clip_ratio="mse")


@pytest.mark.parametrize("kwargs, match", [
    (dict(bits=1), "bits"), (dict(bits=17), "bits"), (dict(bits=4.5), "bits"),
    (dict(bits=4, granularity="row"), "granularity"),
    (dict(bits=4, granularity="group"), "group_size"),
    (dict(bits=4, granularity="group", group_size=0), "group_size"),
    (dict(bits=4, granularity="channel", group_size=128), "group_size"),
    (dict(bits=4, clip_ratio=0.0), "clip_ratio"), (dict(bits=4, clip_ratio=1.5), "clip_ratio"),
    (dict(bits=4, clip_ratio="max"), "clip_ratio"),
    (dict(bits=4, sym=True, sym_convention="unsigned"), "sym_convention"),
])
def test_invalid_specs_name_the_parameter(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        QuantSpec(**kwargs)


def test_group_size_must_divide_columns():
    with pytest.raises(ValueError, match="group_size=3"):
        fake_quantize(torch.randn(4, 8), 4, granularity="group", group_size=3)
