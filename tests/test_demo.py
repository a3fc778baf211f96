"""`make demo` end to end on a few items: denoising, FP TinyBench, the whole method grid, its files."""
import pandas as pd
import pytest

from dllmq import demo
from dllmq.sweeps.demo import METHODS


@pytest.mark.slow
def test_demo_runs_every_method_and_writes_its_table(tmp_path, capsys):
    out = tmp_path / "demo"
    assert demo.main(["--limit", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "== 1. denoising" in printed and "== 3. every method" in printed
    table = pd.read_csv(out / "results.csv")
    expected = 1 + sum(len(settings) for settings in METHODS.values())
    assert len(table) == expected and table["recipe"].iloc[0] == "fp"
    assert {"general", "math", "code", "avg", "drop", "band"} <= set(table.columns)
    assert table[["general", "math", "code"]].notna().all().all()
    for name in ("results.md", "results.jsonl", "accuracy_by_category.png", "drops_vs_paper.png"):
        assert (out / name).stat().st_size > 0, name
    # a second run resumes from the store: nothing is recomputed
    assert demo.main(["--limit", "2", "--out", str(out), "--no-eval"]) == 0
    assert f"{expected} already stored, 0 run now" in capsys.readouterr().out


def test_no_grid_skips_the_grid(tmp_path, capsys):
    assert demo.main(["--no-eval", "--no-grid", "--out", str(tmp_path / "d")]) == 0
    assert "== 3." not in capsys.readouterr().out and not (tmp_path / "d").exists()
