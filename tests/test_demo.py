"""`make demo` end to end on a few items: denoising, FP TinyBench, the whole method grid, its files."""
import pandas as pd
import pytest

from dllmq import demo
from dllmq.sweeps import ResultStore
from dllmq.sweeps.demo import METHODS, compute_settings


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
    records = ResultStore(out / "results.jsonl").records()
    assert {r["versions"]["threads"] for r in records} == {demo.DEMO_THREADS}  # pinned, and stored with each cell
    assert all(r["versions"]["cpu"] and r["versions"]["cpu_capability"] for r in records)
    for name in ("results.md", "results.jsonl", "accuracy_by_category.png", "drops_vs_paper.png"):
        assert (out / name).stat().st_size > 0, name
    # a second run resumes from the store: nothing is recomputed
    assert demo.main(["--limit", "2", "--out", str(out), "--no-eval"]) == 0
    assert f"{expected} already stored, 0 run now" in capsys.readouterr().out


def test_no_grid_skips_the_grid(tmp_path, capsys):
    assert demo.main(["--no-eval", "--no-grid", "--out", str(tmp_path / "d")]) == 0
    assert "== 3." not in capsys.readouterr().out and not (tmp_path / "d").exists()


def test_compute_settings_tell_a_one_run_table_from_a_mixed_one():
    one = {"threads": 2, "cpu": "X", "cpu_capability": "AVX512", "torch": "2.13.0"}
    records = [{"cell": "a", "versions": one}, {"cell": "b", "versions": one},
               {"cell": "c", "versions": {**one, "threads": 1}}]
    assert compute_settings(records, {"a", "b"}) == [one]
    assert len(compute_settings(records, {"a", "b", "c"})) == 2
    assert compute_settings(records, {"z"}) == []


def test_demo_refuses_a_thread_count_below_one():
    with pytest.raises(ValueError, match="--threads=0"):
        demo.main(["--threads", "0", "--no-eval", "--no-grid"])
