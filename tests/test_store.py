"""The results store: atomic appends, torn-write recovery, dedupe, merge."""
import json
import os

import pytest

from dllmq.sweeps.store import ResultStore, atomic_write_text, merge_stores, record_key


def rows(values):
    return [{"task": f"t{i}", "metric": "acc", "value": v, "stderr": 0.01, "n": 10} for i, v in enumerate(values)]


def test_append_and_read_back(tmp_path):
    store = ResultStore(tmp_path / "r.jsonl")
    store.append_cell("c1", rows([0.5, 0.25]), model="m", recipe="fp", settings={"limit": 3}, versions={"x": "1"})
    recs = store.records()
    assert len(recs) == 2 and store.done_cells() == {"c1"}
    assert {r["task"]: r["value"] for r in recs} == {"t0": 0.5, "t1": 0.25}
    assert all(r["settings"] == {"limit": 3} and r["versions"] == {"x": "1"} and r["group"] == 2 for r in recs)
    # one JSON object per line, nothing else
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(isinstance(json.loads(line), dict) for line in lines)
    frame = store.to_frame()
    assert list(frame["value"]) == [0.5, 0.25] and "timestamp" in frame


def test_bad_rows_raise(tmp_path):
    store = ResultStore(tmp_path / "r.jsonl")
    with pytest.raises(ValueError, match="rows is empty"):
        store.append_cell("c", [], model="m", recipe="fp")
    with pytest.raises(ValueError, match="lacks"):
        store.append_cell("c", [{"task": "t", "value": 1.0}], model="m", recipe="fp")
    with pytest.raises(ValueError, match="repeat"):
        store.append_cell("c", rows([1.0]) * 2, model="m", recipe="fp")
    assert not store.path.exists() or store.path.read_text() == ""


def test_torn_last_line_is_ignored_and_repaired(tmp_path):
    path = tmp_path / "r.jsonl"
    store = ResultStore(path)
    store.append_cell("c1", rows([0.1, 0.2]), model="m", recipe="fp")
    store.append_cell("c2", rows([0.3, 0.4]), model="m", recipe="rtn")
    # simulate a crash in the middle of writing cell c3: its first line complete, the second torn
    full = "".join(json.dumps(r) + "\n" for r in store._parse()[-2:])
    torn = full.replace('"c2"', '"c3"').replace('"rtn"', '"gptq"')
    with open(path, "a") as handle:
        handle.write(torn[: len(torn) // 2 + 40])
    assert not store.is_valid_jsonl()
    assert store.done_cells() == {"c1", "c2"}  # c3 is incomplete: not done, not returned
    assert len(store.records()) == 4 and store.skipped_lines == 1 and store.incomplete_cells == 1
    # an append after the crash starts on a fresh line, so its records parse
    store.append_cell("c4", rows([0.9]), model="m", recipe="awq")
    assert store.done_cells() == {"c1", "c2", "c4"}
    removed = store.repair()
    assert removed == 2 and store.is_valid_jsonl()
    assert len(path.read_text().splitlines()) == 5
    assert store.done_cells() == {"c1", "c2", "c4"}


def test_newest_record_wins(tmp_path):
    store = ResultStore(tmp_path / "r.jsonl")
    store.append_cell("c1", rows([0.1]), model="m", recipe="fp")
    store.append_cell("c1", rows([0.7]), model="m", recipe="fp")
    assert [r["value"] for r in store.records()] == [0.7]


def test_merge_dedupes_by_key(tmp_path):
    a, b = ResultStore(tmp_path / "a.jsonl"), ResultStore(tmp_path / "b.jsonl")
    a.append_cell("c1", rows([0.1, 0.2]), model="m", recipe="fp")
    b.append_cell("c2", rows([0.3]), model="m", recipe="rtn")
    b.append_cell("c1", rows([0.5, 0.6]), model="m", recipe="fp")  # newer duplicate of c1
    merged = merge_stores([a.path, b.path], tmp_path / "all.jsonl")
    recs = merged.records()
    assert len(recs) == 3 and len({record_key(r) for r in recs}) == 3
    assert sorted(r["value"] for r in recs) == [0.3, 0.5, 0.6]
    assert merged.done_cells() == {"c1", "c2"} and merged.is_valid_jsonl()
    # merging again (out included) changes nothing
    again = merge_stores([a.path, b.path], tmp_path / "all.jsonl")
    assert sorted(r["value"] for r in again.records()) == [0.3, 0.5, 0.6]
    with pytest.raises(FileNotFoundError):
        merge_stores([tmp_path / "missing.jsonl"], tmp_path / "x.jsonl")


def test_atomic_write_leaves_no_temp_files(tmp_path):
    atomic_write_text(tmp_path / "f.txt", "hello\n")
    atomic_write_text(tmp_path / "f.txt", "world\n")
    assert (tmp_path / "f.txt").read_text() == "world\n"
    assert os.listdir(tmp_path) == ["f.txt"]
