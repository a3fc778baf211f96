"""The paper's outlier figures: panel table, layer mapping, and `dllmq figures` on a tiny model."""
import pytest
import torch

from dllmq.viz import figures


def test_panel_table_matches_the_paper():
    assert len(figures.PANELS) == 20
    assert [len(figures.panels(f)) for f in figures.PAPER_FIGURES] == [8, 4, 4, 4]
    d1 = next(p for p in figures.PANELS if p.figure == "1" and p.panel == "d1")
    assert (d1.model, d1.layer, d1.role, d1.paper_massive) == ("LLaDA-8B-Base", 29, "down", True)
    dream = figures.panels("2")
    assert [(p.layer, p.role) for p in dream] == [(1, "q"), (25, "o"), (27, "up"), (4, "down")]
    assert figures.PAPER_MODELS["Dream-7B-Base"] == ("Dream-org/Dream-v0-Base-7B", 28)
    massive = {(p.figure, p.panel) for p in figures.PANELS if p.paper_massive}
    assert massive == {("1", "d1"), ("1", "d2"), ("2", "d"), ("B1", "b"), ("B1", "d"), ("B2", "d")}
    with pytest.raises(ValueError, match="figure"):
        figures.panels("3")


def test_layer_mapping():
    assert figures.map_layer(29, 32, 32) == 29
    assert figures.map_layer(0, 32, 2) == 0 and figures.map_layer(31, 32, 2) == 1
    assert figures.map_layer(27, 28, 30) == 29 and figures.map_layer(4, 28, 30) == 4


def test_massive_test_on_a_tensor():
    x = torch.randn(16, 64)
    assert not figures.is_massive(x)
    x[2, 3] = 2000.0
    assert figures.is_massive(x)


def test_paper_figure_on_a_tiny_model(tiny_dream):
    model, tok = tiny_dream
    out = figures.paper_figures(["2"], model, tok, name="tiny-random-dream", source="text", seq_len=32)
    fig = out["2"]
    assert len(fig.axes) == 4 and all(ax.name == "3d" for ax in fig.axes)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[3].startswith("(d) tiny-random-dream L0 down") and "Dream-7B-Base L4 MLP_down_proj" in titles[3]


def test_cli_writes_pngs(tmp_path, capsys):
    from dllmq.cli import main as dllmq_main
    code = dllmq_main(["figures", "--model", "tiny-random", "--out", str(tmp_path), "--figures", "B2", "depth",
                       "mask_ratio", "--seq-len", "32", "--n-samples", "2"])
    assert code == 0
    assert "figB2_tiny-random.png" in capsys.readouterr().out
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["depth_tiny-random.png", "figB2_tiny-random.png", "mask_ratio_tiny-random.png"]
    assert all(1000 < (tmp_path / n).stat().st_size < 400_000 for n in names)
    with pytest.raises(SystemExit):
        figures.main(["--model", "tiny-random", "--out", str(tmp_path), "--figures", "fig9"])
    with pytest.raises(ValueError, match="--ar"):
        figures.main(["--model", "tiny-random", "--out", str(tmp_path), "--figures", "compare"])
