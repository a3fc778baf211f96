"""Resumable sweeps: skip stored cells, survive a real SIGKILL mid-cell, deterministic shards, merge."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dllmq.sweeps.cli import main as sweep_main
from dllmq.sweeps.store import ResultStore, record_key
from dllmq.sweeps.sweep import (Cell, format_variant, grid, make_cell, parse_shard, parse_variant, run_sweep,
                                     shard_cells)

REPO = Path(__file__).resolve().parents[1]
SLOW_CELLS = textwrap.dedent('''
    """A slow deterministic fake cell function for the kill/resume test."""
    import os, time
    from pathlib import Path

    def slow_cell(cell):
        Path(os.environ["MARKERS"], "started-" + cell.id).touch()
        time.sleep(float(os.environ.get("CELL_SECONDS", "0")))
        h = int(cell.id, 16)
        return [{"task": cell.task, "metric": "acc", "value": (h % 1000) / 1000, "n": 7},
                {"task": cell.task, "metric": "acc_norm", "value": (h % 997) / 997, "n": 7}]
''')
GRID = {"models": ["m1", "m2"], "recipes": ["fp", "rtn:w4a16g32", "gptq:w4a16g32"], "tasks": ["a", "b"]}


def fake_cell(cell):
    h = int(cell.id, 16)
    return [{"task": cell.task, "metric": "acc", "value": (h % 1000) / 1000, "n": 7},
            {"task": cell.task, "metric": "acc_norm", "value": (h % 997) / 997, "n": 7}]


def values(store):
    return {record_key(r): r["value"] for r in store.records()}


def test_cells_and_variants():
    cell = make_cell("tiny", "fp", "tinybench", steps=8, remasking="random")
    assert cell.variant == "remasking=random,steps=8"
    assert cell.options == {"remasking": "random", "steps": 8}
    assert Cell("tiny", "fp", "tinybench", cell.variant).id == cell.id and len(cell.id) == 16
    assert parse_variant(format_variant({"a": 1.5})) == {"a": 1.5}
    with pytest.raises(ValueError, match="may not contain"):
        format_variant({"a": "x,y"})
    cells = grid(["m"], ["fp", "rtn"], ["t1", "t2"], [{"steps": 4}, {"steps": 8}])
    assert len(cells) == 8 and cells[0].group == cells[1].group  # tasks of one model/recipe are adjacent
    with pytest.raises(ValueError, match="models"):
        grid("m", ["fp"], ["t"])


def test_run_sweep_skips_stored_cells(tmp_path):
    cells = grid(**GRID)
    calls = []

    def counting(cell):
        calls.append(cell)
        return fake_cell(cell)

    store = ResultStore(tmp_path / "s.jsonl")
    first = run_sweep(cells[:5], counting, store, progress=False)
    assert (first.total, first.skipped, first.ran) == (5, 0, 5)
    second = run_sweep(cells, counting, store, progress=False)
    assert (second.total, second.skipped, second.ran) == (12, 5, 7)
    assert len(calls) == 12 and len(set(calls)) == 12  # no cell ran twice
    assert len(store.path.read_text().splitlines()) == 24


def test_failing_cell_raises_or_is_reported(tmp_path):
    cells = grid(["m"], ["fp", "bad"], ["t"])

    def sometimes(cell):
        if cell.recipe == "bad":
            raise RuntimeError("boom")
        return fake_cell(cell)

    store = ResultStore(tmp_path / "s.jsonl")
    with pytest.raises(RuntimeError, match="boom"):
        run_sweep(cells[::-1], sometimes, store, progress=False)
    summary = run_sweep(cells, sometimes, store, progress=False, keep_going=True)
    assert summary.ran == 1 and len(summary.failed) == 1 and "boom" in str(summary)
    assert store.done_cells() == {cells[0].id}


def test_shards_partition_the_grid():
    cells = grid(**GRID)
    for by in ("group", "cell"):
        shards = [shard_cells(cells, i, 4, by=by) for i in range(4)]
        keys = [c.key for s in shards for c in s]
        assert sorted(keys) == sorted(c.key for c in cells) and len(keys) == len(set(keys))
        assert shards == [shard_cells(cells, i, 4, by=by) for i in range(4)]  # deterministic
    # by group: the tasks of one (model, recipe) stay in one shard
    for s in (shard_cells(cells, i, 3) for i in range(3)):
        groups = {c.group for c in s}
        assert all(sum(c.group == g for c in cells) == sum(c.group == g for c in s) for g in groups)
    assert parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "x", "1/0", "-1/3"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)


def _sweep_cmd(tmp_path, store):
    return [sys.executable, "-m", "dllmq", "sweep", "--grid", str(tmp_path / "grid.json"), "--cell-fn",
            "slowcells:slow_cell", "--store", str(store), "--no-progress"]


def _env(tmp_path, seconds):
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO}", MARKERS=str(tmp_path / "markers"),
               CELL_SECONDS=str(seconds))
    return env


def test_sigkill_mid_cell_resumes_to_the_same_store(tmp_path):
    (tmp_path / "slowcells.py").write_text(SLOW_CELLS)
    (tmp_path / "grid.json").write_text(json.dumps(GRID))
    (tmp_path / "markers").mkdir()
    cells = grid(**GRID)
    reference = ResultStore(tmp_path / "reference.jsonl")
    run_sweep(cells, fake_cell, reference, progress=False)  # the uninterrupted run

    store = ResultStore(tmp_path / "killed.jsonl")
    for kill_after in (2, 7):  # kill twice, at different points, each time while a cell is running
        proc = subprocess.Popen(_sweep_cmd(tmp_path, store.path), env=_env(tmp_path, 0.3), cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while len(store.done_cells()) < kill_after or len(os.listdir(tmp_path / "markers")) <= kill_after:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.time() < deadline, "the sweep did not progress"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)  # mid-cell: the next cell has started and sleeps
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        done = len(store.done_cells())
        assert kill_after <= done < len(cells) and store.is_valid_jsonl()
        for marker in (tmp_path / "markers").iterdir():
            marker.unlink()
    # resume to the end
    result = subprocess.run(_sweep_cmd(tmp_path, store.path), env=_env(tmp_path, 0), cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "already stored" in result.stdout
    assert values(store) == values(reference)
    lines = store.path.read_text().splitlines()
    assert len(lines) == 2 * len(cells)  # nothing lost, nothing duplicated
    assert store.is_valid_jsonl()


def test_cli_shards_then_merge_equal_a_full_run(tmp_path, capsys):
    (tmp_path / "grid.json").write_text(json.dumps(GRID))
    cell_fn = "tests.test_sweep:fake_cell"
    sys.path.insert(0, str(REPO))
    try:
        shards = []
        for i in range(3):
            path = tmp_path / f"s{i}.jsonl"
            code = sweep_main(["--grid", str(tmp_path / "grid.json"), "--cell-fn", cell_fn, "--store", str(path),
                               "--shard", f"{i}/3", "--no-progress"])
            assert code == 0
            shards.append(path)
        assert sweep_main(["merge", "--out", str(tmp_path / "all.jsonl"), *map(str, shards)]) == 0
        full = ResultStore(tmp_path / "full.jsonl")
        run_sweep(grid(**GRID), fake_cell, full, progress=False)
        assert values(ResultStore(tmp_path / "all.jsonl")) == values(full)
        assert sweep_main(["show", str(tmp_path / "all.jsonl")]) == 0
        assert "rtn:w4a16g32" in capsys.readouterr().out
    finally:
        sys.path.remove(str(REPO))


def test_cli_dry_run_lists_only_the_shard(tmp_path, capsys):
    # the built-in runner checks every cell first, so this grid names models and tasks that exist
    GRID = {"models": ["tiny-random", "tiny-random-dream"], "recipes": ["fp", "rtn:w4a16g32", "gptq:w4a16g32"],
            "tasks": ["tinybench_general", "tinybench_math"]}
    (tmp_path / "grid.json").write_text(json.dumps(GRID))
    listed = []
    for i in range(2):
        assert sweep_main(["--grid", str(tmp_path / "grid.json"), "--shard", f"{i}/2", "--dry-run",
                           "--store", str(tmp_path / "x.jsonl")]) == 0
        listed.append([line for line in capsys.readouterr().out.splitlines() if "|" in line])
    assert sorted(listed[0] + listed[1]) == sorted(c.key for c in grid(**GRID))
    assert not set(listed[0]) & set(listed[1])
    assert not (tmp_path / "x.jsonl").exists()  # a dry run writes nothing
    with pytest.raises(ValueError, match="models, recipes, tasks"):
        (tmp_path / "bad.json").write_text(json.dumps({"models": ["m"]}))
        sweep_main(["--grid", str(tmp_path / "bad.json"), "--dry-run"])
