"""Data-parallel evaluation: one process vs N processes (torchrun, gloo) on a likelihood task, CPU.

    python benchmarks/bench_dp.py [--processes 2] [--limit 72] [--mc-samples 128] [--batch-size 32]

The task, `bench_math_loglik` (written to a temporary folder), scores log p(answer | question) of the
TinyBench math documents with the MC masked ELBO: multi-token answers, mc_samples rows per document, so
the evaluation is compute-bound. Every process gets OMP_NUM_THREADS=1 (one core each). Reports the wall time
of each launch (interpreter and model start-up included), lm-eval's evaluation time (the slowest rank),
the speed-ups 1 / N, and whether the N-process run merged exactly the single process's per-document values.
Run it on an otherwise idle machine: it prints the load average it started at."""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "dist_worker.py"
TASK = "bench_math_loglik"


def _task_yaml() -> str:
    data = ROOT / "dllmq" / "eval" / "data" / "math.jsonl"
    return "\n".join([
        f"task: {TASK}", "dataset_path: json", "dataset_kwargs:", "  data_files:", f"    test: {data}",
        "test_split: test", "output_type: loglikelihood", "doc_to_text: prompt", "doc_to_target: answer",
        "target_delimiter: ''", "metric_list:", "- metric: perplexity", "  aggregation: perplexity",
        "  higher_is_better: false", "metadata:", "  version: 1.0", ""])


def _launch(processes: int, out: Path, task_dir: Path, args) -> float:
    """Run the worker in `processes` processes; returns the wall time of the whole launch."""
    worker = [str(WORKER), str(out), "--tasks", TASK, "--limit", str(args.limit), "--include-path", str(task_dir),
              "--batch-size", str(args.batch_size), "--mc-samples", str(args.mc_samples)]
    if processes > 1:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                   "--master_addr", "127.0.0.1", "--master_port", str(port), *worker]
    else:
        command = [sys.executable, *worker]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{processes}-process run failed:\n{done.stderr[-3000:]}")
    return wall


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--limit", type=int, default=72, help="documents (TinyBench math has 72)")
    ap.add_argument("--mc-samples", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args(argv)
    if args.processes < 2:
        raise ValueError(f"processes={args.processes} must be >= 2 (it is compared with one process)")
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "tasks").mkdir()
        (tmp / "tasks" / f"{TASK}.yaml").write_text(_task_yaml())
        walls, evals, samples = {}, {}, {}
        for n in (1, args.processes):
            walls[n] = _launch(n, tmp / f"p{n}", tmp / "tasks", args)
            evals[n] = max(json.loads((tmp / f"p{n}" / f"rank{r}.json").read_text())["eval_seconds"] for r in range(n))
            samples[n] = json.loads((tmp / f"p{n}" / "results.json").read_text())["samples"]
    n = args.processes
    result = {"processes": n, "documents": args.limit, "mc_samples": args.mc_samples, "load_before": load,
              "wall_1": walls[1], f"wall_{n}": walls[n], "wall_speedup": walls[1] / walls[n],
              "eval_1": evals[1], f"eval_{n}": evals[n], "eval_speedup": evals[1] / evals[n],
              "same_results": samples[1] == samples[n]}
    print(f"load average before: {load:.2f} (on {os.cpu_count()} cores)")
    print(f"{TASK}: {args.limit} documents, mc_samples={args.mc_samples}, batch_size={args.batch_size}, "
          "OMP_NUM_THREADS=1 per process")
    print(f"  wall (launch to exit): 1 process {walls[1]:.1f} s, {n} processes {walls[n]:.1f} s "
          f"-> speed-up {result['wall_speedup']:.2f}x")
    print(f"  lm-eval evaluation   : 1 process {evals[1]:.1f} s, {n} processes {evals[n]:.1f} s "
          f"-> speed-up {result['eval_speedup']:.2f}x")
    print(f"  per-document values identical: {result['same_results']}")
    return result


if __name__ == "__main__":
    main()
