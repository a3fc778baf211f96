"""Plot functions return Figures with the expected axes, built without pyplot."""
import pytest
import torch
from matplotlib.figure import Figure

from dllmq.activations import capture_input, collect_activations, mask_ratio_sweep, steps_sweep
from dllmq.viz import plots


@pytest.fixture
def llada_stats(tiny_llada):
    model, tok = tiny_llada
    ids = torch.randint(4, 100, (4, 24), generator=torch.Generator().manual_seed(0))
    return model, tok, ids, collect_activations(model, ids, progress=False)


def _is_3d(ax):
    return ax.name == "3d"


def test_max_pool_grid_keeps_a_single_spike():
    a = torch.rand(300, 1000)
    a[123, 456] = 1000.0
    pooled, rows, cols = plots.max_pool_grid(a, 50, 100)
    assert pooled.shape == (50, 100) and float(pooled.max()) == 1000.0
    assert rows[1] == 6 and cols[1] == 10


def test_surface_and_paper_panels(llada_stats):
    model, _, ids, _ = llada_stats
    cap = capture_input(model, ids, 1, "down", max_tokens=16)
    fig = plots.plot_surface(cap, tag="Massive")
    assert isinstance(fig, Figure) and len(fig.axes) == 1 and _is_3d(fig.axes[0])
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_zlabel()) == ("channel", "token", "|x|")
    assert any(t.get_text() == "Massive" for t in ax.texts)
    fig = plots.plot_paper_panels([(cap, "a", None), (cap.x[0], "b", None), (cap, "c", "Massive")], title="F", ncols=2)
    assert len(fig.axes) == 3 and all(_is_3d(a) for a in fig.axes)
    assert [a.get_title() for a in fig.axes] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="tokens, channels"):
        plots.plot_surface(torch.zeros(3))


def test_depth_channel_and_histogram_plots(llada_stats):
    _, _, _, stats = llada_stats
    fig = plots.plot_depth(stats, "kurtosis")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "layer" and ax.get_ylabel() == "kurtosis"
    assert len(ax.get_lines()) == 4  # q/k/v, o, gate/up, down inputs
    assert all(len(line.get_xdata()) == 2 for line in ax.get_lines())
    with pytest.raises(ValueError, match="metric"):
        plots.plot_depth(stats, "size")
    fig = plots.plot_channel_profile(stats, 1, "down")
    assert len(fig.axes) == 1 and len(fig.axes[0].get_lines()[0].get_xdata()) == 128
    fig = plots.plot_magnitude_hist(stats, 0, "q")
    assert fig.axes[0].get_xscale() == "log" and len(fig.axes[0].get_lines()) == 2


def test_compare_mask_ratio_steps_and_quant_error(llada_stats, tiny_llama):
    model, tok, ids, stats = llada_stats
    ar_stats = collect_activations(tiny_llama[0], ids, progress=False)
    fig = plots.plot_compare(stats, ar_stats, labels=("LLaDA", "Llama"))
    assert len(fig.axes) == 2
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["LLaDA", "Llama"]
    sweep = mask_ratio_sweep(model, ids, ratios=(0.0, 0.5, 1.0), roles=("down",), progress=False)
    fig = plots.plot_mask_ratio(sweep, "down")
    assert len(fig.axes) == 2 and len(fig.axes[0].get_lines()) == 3  # one line per ratio
    assert fig.axes[1].get_xlabel() == "mask ratio of the input"
    with pytest.raises(ValueError, match="role"):
        plots.plot_mask_ratio(sweep, "q")
    steps, _ = steps_sweep(model, tok, ["abc"], steps=4, gen_length=4, block_length=4)
    fig = plots.plot_steps(steps, "down", layer=1)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == ["prompt positions", "masked positions", "decoded positions"]
    x = torch.randn(20, 64)
    x[3, 5] = 5000.0
    fig = plots.plot_token_quant_error(x, bits=4)
    assert len(fig.axes) == 1 and len(fig.axes[0].collections) == 2


def test_figures_render_to_png(llada_stats, tmp_path):
    _, _, _, stats = llada_stats
    path = tmp_path / "depth.png"
    plots.plot_depth(stats).savefig(path, dpi=50)
    assert path.stat().st_size > 1000
