"""One process of a data-parallel evaluation, for tests/test_distributed.py and benchmarks/bench_dp.py.

    python tests/dist_worker.py OUT --tasks tinybench_general,tinybench_math --limit 16 --batch-size 8
    python -m torch.distributed.run --nproc_per_node 2 tests/dist_worker.py OUT ...   (same, sharded)

Runs lm-eval's `simple_evaluate` with `DllmqLM(pretrained=tiny)` (rank and world size from the launcher)
and writes OUT/rank<r>.json: which documents this process scored (`DllmqLM.served`) and how long it took
(`seconds` from loading the model, `eval_seconds` of lm-eval's evaluation alone); rank 0 also writes
OUT/results.json: the merged metrics and, per task, every document's filtered response and metrics.
Not a test module (pytest collects test_*.py only).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="dist_worker")
    p.add_argument("out")
    p.add_argument("--tasks", required=True, help="comma-separated task names (TinyBench, or in --include-path)")
    p.add_argument("--limit", type=int, required=True)
    p.add_argument("--batch-size", type=int, default=8, help="likelihood rows per forward; prompts per batch")
    p.add_argument("--mc-samples", type=int, default=8)
    p.add_argument("--include-path", help="a folder of extra lm-eval task files (benchmarks/bench_dp.py writes one)")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import logging

    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from dllmq.eval.lm import DllmqLM
    from dllmq.eval.tasks import task_dir

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    lm = DllmqLM(pretrained="tiny", device="cpu", mc_samples=args.mc_samples, batch_size=args.batch_size,
                 progress=False)
    paths = [str(task_dir()), *([args.include_path] if args.include_path else [])]
    manager = TaskManager(include_path=paths, include_defaults=False)
    lm.barrier()  # both clocks start together
    begin = time.perf_counter()
    results = simple_evaluate(model=lm, tasks=args.tasks.split(","), limit=args.limit, task_manager=manager,
                              log_samples=True, bootstrap_iters=100)
    seconds, eval_seconds = time.perf_counter() - start, time.perf_counter() - begin
    (out / f"rank{lm.rank}.json").write_text(json.dumps(
        {"rank": lm.rank, "world_size": lm.world_size, "served": lm.served, "seconds": seconds,
         "eval_seconds": eval_seconds}))
    if results is not None:  # rank 0 (lm-eval gathers the per-document metrics there)
        samples = {task: sorted(({"doc_id": s["doc_id"], "filtered_resps": s["filtered_resps"],
                                  **{m: s[m] for m in s["metrics"]}} for s in rows), key=lambda s: s["doc_id"])
                   for task, rows in results["samples"].items()}
        (out / "results.json").write_text(json.dumps({"metrics": results["results"], "samples": samples}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
