"""Teaching helpers of notebooks 03-05 and their exercise checkers (headless)."""
import pytest
import torch

from dllmq.exercises import n03_quantization_basics as n03
from dllmq.exercises import n04_gptq as n04
from dllmq.exercises import n05_awq as n05
from dllmq.viz import quant_basics as QV
from dllmq.lab import n03_quantization_basics as lab03
from dllmq.lab import n04_gptq as lab04
from dllmq.lab import n05_awq as lab05
from dllmq.lab import layers as lab
from dllmq.quant.quantizer import QuantSpec, fake_quantize


@pytest.fixture(scope="module")
def layer():
    from dllmq.models import build_random_model
    model, _ = build_random_model("llada")
    w, x = lab.layer_inputs(model, torch.randint(4, 100, (4, 64)), 1, "down")
    return w, x


def test_layer_inputs_and_hessian(layer):
    w, x = layer
    assert w.shape == (64, 128) and x.shape == (256, 128)
    assert torch.allclose(lab.hessian(x), 2 * x.T @ x, rtol=1e-4, atol=1e-4)  # one "sequence" of 256 tokens


def test_grid_levels():
    assert lab03.grid_levels(2, -1.0, 2.0).tolist() == [-1.0, 0.0, 1.0, 2.0]
    levels = lab03.grid_levels(3, -2.0, 1.0, sym=True)
    assert levels.numel() == 8 and levels.max().item() == pytest.approx(2.0)


def test_granularity_and_outlier_tables(layer):
    w, x = layer
    g = lab03.granularity_errors(w, x, bits=3, group_sizes=(64, 32)).set_index("granularity")["rel_error"]
    assert g["g32"] < g["per-channel"] < g["per-tensor"]
    sweep = lab03.outlier_sweep(w, [1, 100], bits=4, group_size=32)
    big = sweep[sweep.outlier_x_max == 100].set_index("granularity")["rel_error_others"]
    assert big["per-tensor"] > 10 * big["per-channel"] and big["g32"] <= big["per-channel"]


def test_error_grid_and_clip_curve(layer):
    w, x = layer
    grid = lab03.error_grid(w, x, (2, 4, 8), (None, 32))
    for group, part in grid.groupby("group"):
        assert part.sort_values("bits")["rel_error"].is_monotonic_decreasing
    curve = lab03.clip_curve(w, x, bits=3)
    assert curve["clip"].tolist()[-1] == "mse" and curve["clip"].tolist()[0] == 1.0 and len(curve) == 12


def test_gptq_column_curve_and_options(layer):
    w, x = layer
    spec = QuantSpec(bits=3, granularity="group", group_size=32, include_zero=True)
    curve = lab04.gptq_column_curve(w, lab.hessian(x), spec, points=4)
    assert curve["columns"].tolist() == [0, 32, 64, 96, 128]
    assert curve["rtn"].iloc[0] == 0 and curve["gptq"].iloc[0] == 0
    assert (curve["gptq"] <= curve["rtn"] + 1e-12).all()
    table = lab04.gptq_options_table(w, lab.hessian(x), spec)
    assert table["variant"].iloc[0] == "RTN" and table["vs_rtn"].iloc[1] < 1


def test_awq_helpers(layer):
    w, x = layer
    assert lab05.salient_channels(x, 0.05).numel() == 6
    table = lab05.salient_experiment(w, x, bits=3, group_size=32)
    assert len(table) == 5 and table["variant"].iloc[0] == "RTN"
    curve = lab05.awq_ratio_curve(w, x, QuantSpec(bits=3, granularity="group", group_size=32))
    rtn = fake_quantize(w, 3, granularity="group", group_size=32)
    assert len(curve) == 20 and curve["rel_error"].iloc[0] == pytest.approx(
        float((x @ (rtn - w).T).pow(2).sum() / (x @ w.T).pow(2).sum()), rel=1e-5)


def test_perplexity_guards(tiny_llada, tiny_llama):
    with pytest.raises(ValueError, match="autoregressive"):
        lab.perplexity(tiny_llada[0], torch.randint(4, 100, (40,)))
    ppl = lab.perplexity(tiny_llama[0], torch.randint(4, 100, (40,)), window=16)
    assert 10 < ppl < 1000  # a random model over ~100 tokens


def test_widget_builds_and_redraws(layer):
    pytest.importorskip("ipywidgets")
    import matplotlib
    matplotlib.use("Agg")
    w, x = layer
    seen = []
    redraw = QV.bits_group_widget(w, x, extra=lambda bits, g: seen.append((bits, g)) or "ok")
    redraw()
    assert seen == [(4, 128), (4, 128)]  # initial draw + explicit redraw, defaults 4 bits, g128


# -- exercise checkers: a right answer passes, a typical mistake gets a hint ------------------------

def test_n03_checkers():
    assert "correct" in n03.check_asym_params(
        lambda x, b: ((x.max() - x.min()) / (2 ** b - 1),
                      torch.clamp(-torch.round(x.min() / ((x.max() - x.min()) / (2 ** b - 1))), 0, 2 ** b - 1)))
    with pytest.raises(AssertionError, match="scale"):
        n03.check_asym_params(lambda x, b: (x.abs().max() / (2 ** (b - 1) - 1), 0)).assert_passed()
    good = lambda w, b, g: fake_quantize(w, b, granularity="group", group_size=g)
    assert "correct" in n03.check_group_fake_quant(good)
    with pytest.raises(AssertionError, match="ROW"):
        n03.check_group_fake_quant(lambda w, b, g: fake_quantize(w, b, granularity="channel")).assert_passed()
    sweep = lab03.outlier_sweep(torch.randn(8, 64), [1, 100], bits=4, group_size=16)
    best = sweep[sweep.outlier_x_max == 100].sort_values("rel_error_others").iloc[0]["granularity"]
    assert "correct" in n03.check_outlier_answer(best, sweep)
    with pytest.raises(AssertionError):
        n03.check_outlier_answer("per-tensor", sweep).assert_passed()


def test_n04_checkers():
    assert "correct" in n04.check_hessian(lambda x: 2 * x.T @ x / x.shape[0])
    with pytest.raises(AssertionError, match="factor 2"):
        n04.check_hessian(lambda x: x.T @ x / x.shape[0]).assert_passed()

    def step(W, Hinv, i, spec):
        q = fake_quantize(W, spec)[:, i]
        err = (W[:, i] - q) / Hinv[i, i]
        W[:, i:] -= err[:, None] * Hinv[i, i:][None, :]
        return W

    assert "correct" in n04.check_column_step(step)
    with pytest.raises(AssertionError):
        n04.check_column_step(lambda W, Hinv, i, spec: W).assert_passed()


def test_n05_checkers():
    def scale(x_mean, r):
        s = x_mean.pow(r).clamp(min=1e-4)
        return s / (s.max() * s.min()).sqrt()

    assert "correct" in n05.check_awq_scale(scale)
    with pytest.raises(AssertionError, match="normalise"):
        n05.check_awq_scale(lambda x_mean, r: x_mean.pow(r).clamp(min=1e-4)).assert_passed()
    assert "correct" in n05.check_fold(lambda g, W, s: (g / s, W * s))
    with pytest.raises(AssertionError, match="output changed"):
        n05.check_fold(lambda g, W, s: (g / s, W / s)).assert_passed()


@pytest.mark.slow
def test_rtn_accuracy_for_the_widget(tiny_trained):
    model, tok = tiny_trained
    text = lab.rtn_accuracy(model, tok, 4, 128, limit=3)
    assert text.startswith("rtn:w4a16g128: general ") and "±" in text
