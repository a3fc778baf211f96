"""Data parallel: two CPU processes (torchrun, gloo) against one process, on the trained tiny model.

The slow tests launch real processes: `tests/dist_worker.py` (lm-eval's evaluator with DllmqLM) and the
`dllmq sweep` command. Each launch gets a free port and OMP_NUM_THREADS=1.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lm_eval.api.instance import Instance

from dllmq.env import broadcast, launch, process_group
from dllmq.eval.lm import DllmqLM
from dllmq.sweeps.store import ResultStore

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "dist_worker.py"
TASKS = ("tinybench_general", "tinybench_math", "tinybench_code")  # likelihood MC, two greedy generation tasks


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                            "MASTER_PORT")}
    return {**env, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false", "DLLMQ_TRACEBACK": "1"}


def _command(args: list, processes: int) -> list:
    if processes == 1:
        return [sys.executable, *map(str, args)]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
            "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), *map(str, args)]


def _run(args: list, processes: int) -> str:
    done = subprocess.run(_command(args, processes), cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return done.stdout


# ---- fast: the pieces ---------------------------------------------------------------------------------
def test_launch_reads_the_launcher_environment(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert launch() == (0, 1, 0)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert launch() == (3, 4, 3)  # LOCAL_RANK defaults to RANK (one machine)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert launch() == (3, 4, 1)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="RANK=4"):
        launch()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE='two'"):
        launch()


def test_a_launch_without_a_rendezvous_address_is_an_error_naming_it(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert broadcast({"a"}) == {"a"} and process_group() is None  # one process: nothing to join
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="MASTER_ADDR, MASTER_PORT not set"):
        process_group()


def test_a_request_scores_the_same_whatever_shares_its_batch(tiny_trained):
    """A sharded run puts each request beside other requests than one process does: its value must not move."""
    model, tok = tiny_trained
    lm = DllmqLM(model=model, tokenizer=tok, mc_samples=8, batch_size=8, progress=False)
    pairs = [("Question: Is 711 larger than 799?\nAnswer:", " no"), ("Q: 3+4=", " 7"),
             ("Question: What is the opposite of happy: sour, scared or sad?\nAnswer:", " sad or sour"),
             ("Q: 3+4=", " 7"), ("Q: 5+4=", " 9")]
    reqs = [Instance(request_type="loglikelihood", doc={}, arguments=p, idx=0) for p in pairs]
    alone = [lm.loglikelihood([r])[0] for r in reqs]
    assert lm.loglikelihood(reqs) == alone  # bit for bit: no row is padded
    assert lm.loglikelihood(reqs[::-1]) == alone[::-1]


# ---- slow: real launches ------------------------------------------------------------------------------
@pytest.mark.slow
def test_two_processes_split_the_documents_and_merge_to_the_single_process_results(tmp_path):
    limit = 16
    args = ["--tasks", ",".join(TASKS), "--limit", limit, "--batch-size", 8]  # batches mix documents
    _run([WORKER, tmp_path / "one", *args], 1)
    _run([WORKER, tmp_path / "two", *args], 2)
    single = json.loads((tmp_path / "one" / "rank0.json").read_text())
    ranks = [json.loads((tmp_path / "two" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert single["world_size"] == 1 and [r["world_size"] for r in ranks] == [2, 2]
    for task in TASKS:  # (a) each rank scored its own half of every task's documents
        assert single["served"][task] == list(range(limit))
        mine = [set(r["served"][task]) for r in ranks]
        assert [len(m) for m in mine] == [limit // 2] * 2 and not mine[0] & mine[1]
        assert mine[0] | mine[1] == set(range(limit))
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    # (b) rank 0 merged exactly the single process's results: every document's log-likelihoods and
    # generated answers bit for bit, hence the metrics and their stderr
    assert set(two["samples"]) == set(TASKS)
    for task in TASKS:
        assert [s["doc_id"] for s in two["samples"][task]] == list(range(limit))
        assert two["samples"][task] == one["samples"][task], task
    assert two["metrics"] == one["metrics"]


def _store_facts(path: Path) -> dict:
    """key -> (value, stderr, n) of the store, and from its raw lines (duplicates kept): line count, the
    write ids of each cell, the world sizes recorded."""
    keys = ("model", "recipe", "task", "metric", "variant")
    values = {tuple(r[k] for k in keys): (r["value"], r.get("stderr"), r.get("n")) for r in ResultStore(path).records()}
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]  # repaired: all parse
    writes = {}
    for r in lines:
        writes.setdefault(r["cell"], set()).add(r["write"])
    return {"values": values, "lines": len(lines), "writes": writes,
            "processes": {r["settings"]["processes"] for r in lines}}


def _workers_of(pid: int) -> list:
    """Child processes of `pid` (torchrun's workers run in their own sessions: kill them one by one)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


@pytest.mark.slow
def test_a_killed_two_process_sweep_resumes_and_equals_the_single_process_store(tmp_path):
    from dllmq.quant import Recipe

    recipes = ["fp", *(str(Recipe.paper("rtn", s, model="tiny")) for s in ("w4a16g128", "w8a8"))]
    (tmp_path / "grid.json").write_text(json.dumps({"models": ["tiny"], "recipes": recipes,
                                                    "tasks": ["tinybench_general", "tinybench_math"]}))
    total = 2 * len(recipes)

    def sweep(store):
        return ["-m", "dllmq", "sweep", "--grid", tmp_path / "grid.json", "--store", store, "--limit", 16,
                "--no-progress"]

    _run(sweep(tmp_path / "one.jsonl"), 1)
    # a 2-process sweep, crashed (both workers SIGKILLed) once its first cell is stored
    store = tmp_path / "two.jsonl"
    log = open(tmp_path / "killed.log", "w")
    proc = subprocess.Popen(_command(sweep(store), 2), cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    try:
        while not (store.exists() and ResultStore(store).done_cells()):
            assert proc.poll() is None, "the sweep ended before its first cell was stored"
            assert time.monotonic() < deadline, "no cell stored in 300 s"
            time.sleep(0.02)
        for pid in _workers_of(proc.pid):
            os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert proc.returncode != 0
    stored = len(ResultStore(store).done_cells())
    assert 1 <= stored < total, (stored, (tmp_path / "killed.log").read_text()[-2000:])
    # the rerun skips what rank 0 found stored, runs the rest, and reports once
    out = _run(sweep(store), 2)
    assert out.count(f"{total} cells: {stored} already stored, {total - stored} run now") == 1, out
    one, two = _store_facts(tmp_path / "one.jsonl"), _store_facts(store)
    assert two["values"] == one["values"] and len(two["values"]) == 2 * len(recipes)
    # (c) only rank 0 wrote: one write per cell, no line twice, and the records say 2 processes made them
    assert two["lines"] == one["lines"] and all(len(w) == 1 for w in two["writes"].values())
    assert len(two["writes"]) == total and two["processes"] == {2} and one["processes"] == {1}
