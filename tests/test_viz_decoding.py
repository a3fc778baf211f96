"""Decoding pictures and the notebook-01 widget panel, driven headlessly."""
import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402
import torch  # noqa: E402

from dllmq.decoding import generate  # noqa: E402
from dllmq.exercises.n01_decoding import check_quota, check_select  # noqa: E402
from dllmq.models import build_random_model  # noqa: E402
from dllmq.viz.decoding import canvas_text, plot_commits_per_step, plot_unmask_heatmap, trace_lines  # noqa: E402
from dllmq.viz.decoding_widgets import decoding_panel, valid_block_lengths  # noqa: E402


@pytest.fixture(scope="module")
def model_tok():
    return build_random_model("llada", seed=1, init_std=0.4)


def test_trace_lines_show_masks_disappearing(model_tok):
    model, tok = model_tok
    gen = generate(model, tok, ["abc"], steps=4, gen_length=8, block_length=8, trace=True)
    lines = trace_lines(gen, tok, model.config.mask_token_id)
    assert len(lines) == 5
    assert lines[0].count("_") == 8 and lines[-1].count("_") <= lines[1].count("_") < 8
    assert canvas_text(torch.tensor([3, 3]), tok, 3) == "__"


def test_heatmap_and_quota_figures(model_tok):
    model, tok = model_tok
    gen = generate(model, tok, ["abc"], steps=4, gen_length=8, block_length=4, trace=True)
    fig = plot_unmask_heatmap(gen, tok)
    assert len(fig.axes) == 4  # two strips + two colorbars
    assert fig.axes[0].images[0].get_array().max() == 3  # last step index
    fig = plot_commits_per_step(gen)
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights == [2, 2, 2, 2]


def test_panel_redraws_when_widgets_change(model_tok):
    model, tok = model_tok
    panel, state = decoding_panel(model, tok, "abc", gen_length=8)
    first = state["last"]
    assert first.settings["block_length"] in valid_block_lengths(8)
    steps_slider, block_dropdown = panel.children[0].children
    remask = panel.children[1]
    block_dropdown.value = 2
    assert state["last"].settings["block_length"] == 2
    assert state["last"].settings["steps"] % 4 == 0
    remask.value = "random"
    assert state["last"].settings["remasking"] == "random"
    steps_slider.value = 4
    assert state["last"].settings["steps"] == 4


def test_exercise_checkers_accept_solutions_and_reject_mistakes():
    from dllmq.decoding import unmask_quota
    assert "correct" in check_quota(unmask_quota)
    with pytest.raises(AssertionError, match="FIRST"):
        check_quota(lambda n, s: [n // s + (1 if j >= s - n % s else 0) for j in range(s)]).assert_passed()
    assert "correct" in check_select(lambda c, m, k: c.masked_fill(~m, -1e9).topk(k).indices)
    with pytest.raises(AssertionError):
        check_select(lambda c, m, k: c.topk(k).indices).assert_passed()
