"""The notebook 06-08 views: every layer-level view is exact, the widgets' logic runs headless."""
import pytest
import torch
from matplotlib.figure import Figure

from dllmq.models import get_layout
from dllmq.quant import Recipe
from dllmq.quant.hadamard import is_supported
from dllmq.viz import wa as WV
from dllmq.lab import n06_smoothquant as lab06
from dllmq.lab import n07_quarot as lab07
from dllmq.lab import n08_duquant as lab08
from dllmq.lab import layers as lab


def _ids(B=2, T=24, seed=0):
    return torch.randint(4, 101, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def layer(tiny_llada):
    model, _ = tiny_llada
    x = lab.linear_input(model, _ids(), 1, "down")
    return model, x, lab.linear_weight(model, 1, "down")


def test_linear_input_is_what_the_weight_sees(layer):
    model, x, w = layer
    assert x.shape == (24, 128) and w.shape == (64, 128)
    seen = []
    h = get_layout(model).blocks[1].get("down").register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    with torch.no_grad():
        model(_ids()[:1])
    h.remove()
    assert torch.allclose(seen[0][0], x)


def test_views_keep_the_product(layer):
    _, x, w = layer
    y = x @ w.T
    xs, ws, s = lab06.smooth_view(x, w, 0.5)
    assert torch.allclose(xs @ ws.T, y, atol=1e-5)
    assert torch.allclose(xs.abs().amax(0), ws.abs().amax(0), rtol=1e-4)  # α = 0.5 balances the ranges
    for kind in lab07.ROTATIONS:
        xr, wr = lab07.rotate_view(x, w, kind)
        assert torch.allclose(xr @ wr.T, y, atol=1e-5)
    stages = lab08.duquant_stages(x, w, 0.5, block_size=32, steps=8)
    assert list(stages) == ["original", "smoothed", "rotated", "permuted", "rotated again"]
    for xk, wk in stages.values():
        assert torch.allclose(xk @ wk.T, y, atol=1e-5)


def test_errors_and_sweeps(layer):
    _, x, w = layer
    e8, e4 = lab.layer_errors(x, w, 8, 8), lab.layer_errors(x, w, 4, 4)
    assert e8["output_error"] < e4["output_error"]
    table = lab06.alpha_sweep(x, w, alphas=(0.0, 0.5, 1.0))
    assert list(table["alpha"]) == [0.0, 0.5, 1.0] and table["output_error"].notna().all()
    peaks = lab08.greedy_peaks(x, 32, 6)
    assert len(peaks) == 7 and min(peaks) <= peaks[0]
    assert lab.per_token_error(x, 4).shape == (24,)
    assert lab08.block_maxima(x, 32).shape == (4,)


def test_plots_and_widgets_build(layer):
    _, x, w = layer
    figs = [WV.plot_channel_ranges({"a": (x, w)}), WV.plot_alpha_sweep(lab06.alpha_sweep(x, w, (0.0, 1.0))),
            WV.plot_token_profile({"a": x}, 0), WV.plot_stage_summary(lab08.duquant_stages(x, w, 0.5, 32, 4), 32),
            WV.plot_peaks({"c": [3.0, 2.0]})]
    assert all(isinstance(f, Figure) for f in figs)
    for widget in (WV.alpha_widget(x, w), WV.rotation_widget(x, w), WV.duquant_widget(x, w, 32)):
        assert len(widget.children) == 2


def test_the_one_fitter_adapts_the_preset_to_the_model(tiny_llada):
    model, _ = tiny_llada  # hidden 64, MLP 128
    duq = Recipe.paper("duquant", "w4a4", model=model)
    assert duq.knob("block_size") == 64 and duq.w_clip == 0.8
    rtn = Recipe.paper("rtn", "w4a4", model=model)  # the RTN baseline: linears only, as the demo's
    assert (rtn.q_bits, rtn.kv_bits) == (16, 16) and str(rtn) == "rtn:w4a4:calib=tiny,n=16,len=128"
    assert not is_supported(9)  # SmolLM2's head count: QuaRot gets the explicit orthogonal alternative there


def test_outlier_site_and_model_level(tiny_llada):
    model, _ = tiny_llada
    block, role = lab.outlier_site(model, _ids(), roles=("down",), by="absmax")
    assert role == "down" and block in (0, 1)
    assert lab.transform_error(model, _ids(), lambda m: None) == 0.0
    table = lab.compare_recipes(model, ["rtn:w8a8", "rtn:w4a4"], _ids(seed=1), _ids(seed=2))
    assert list(table["recipe"]) == ["FP", "rtn:w8a8", "rtn:w4a4"]
    assert table["logits_error"].iloc[2] > table["logits_error"].iloc[1] > 0


def test_compare_recipes_gives_calibration_only_to_methods_that_use_it(tiny_llada, monkeypatch):
    """RTN is data-free: the comparison skips its calibration walk (same weights, a fraction of the time)."""
    import dllmq.quant as Q
    model, _ = tiny_llada
    seen, real = {}, Q.quantize

    def spy(m, recipe, calib=None, **kw):
        seen[recipe.method] = calib
        return real(m, recipe, calib, **kw)

    monkeypatch.setattr(Q, "quantize", spy)
    table = lab.compare_recipes(model, ["rtn:w4a4", "smoothquant:w4a4"], _ids(seed=1), _ids(seed=2))
    assert seen["rtn"] is None and torch.equal(seen["smoothquant"], _ids(seed=1))
    with_calib = real(model, "rtn:w4a4", _ids(seed=1))[0]
    without = real(model, "rtn:w4a4")[0]
    assert all(torch.equal(a, b) for a, b in zip(with_calib.state_dict().values(), without.state_dict().values()))
    assert table["logits_error"].iloc[1] > 0
