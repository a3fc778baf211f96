"""Full-mode (non-smoke) wall time of every notebook on this machine, with the cells that take it.

    python benchmarks/bench_notebooks.py [--notebooks 06 07] [--out benchmarks/results/notebooks_cpu.json]

Each notebook runs top to bottom in a fresh kernel (nbclient) with DLLMQ_SMOKE=0, in its own empty
folder (so no store of an earlier run is resumed: the time of a first run, as from a fresh clone), one
notebook at a time. The budget is 2 minutes per notebook on a 2-core CPU; run it on an otherwise idle
machine: it prints the load average it started at and records it with the times. SmolLM2 is converted
from its GGUF file once and then loads from the converted copy (`dllmq.models.loading.smollm2_copy`): each
notebook records whether that copy existed when it started (`smollm2_copy_before`)."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
BUDGET_S = 120


def _cell_seconds(cell) -> float:
    """Execution time of one code cell from the timestamps nbclient records in its metadata."""
    stamps = cell.get("metadata", {}).get("execution", {})
    start, end = stamps.get("iopub.execute_input"), stamps.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def time_notebook(path: Path, timeout: int) -> dict:
    """Run one notebook in full mode in a fresh folder; wall seconds and its three slowest cells."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix=f"dllmq_{path.stem}_") as tmp:
        shutil.copy(path, tmp)
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": tmp}})
        start = time.perf_counter()
        client.execute()
        seconds = time.perf_counter() - start
    cells = [(i, _cell_seconds(c), "".join(c["source"]).strip().splitlines()[-1][:80])
             for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    slowest = sorted(cells, key=lambda c: -c[1])[:3]
    return {"seconds": round(seconds, 1), "within_budget": seconds <= BUDGET_S,
            "slowest_cells": [{"cell": i, "seconds": round(s, 1), "last_line": line} for i, s, line in slowest]}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", nargs="*", default=None, help="number prefixes, e.g. 06 07 (default: all)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds one cell may run")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "notebooks_cpu.json"))
    args = parser.parse_args(argv)
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.notebooks:
        unknown = set(args.notebooks) - {p.name[:2] for p in paths}
        if unknown:
            parser.error(f"--notebooks: no notebook numbered {sorted(unknown)}; allowed: {[p.name[:2] for p in paths]}")
        paths = [p for p in paths if p.name[:2] in args.notebooks]
    os.environ.update(DLLMQ_SMOKE="0", MPLBACKEND="Agg", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                      TOKENIZERS_PARALLELISM="false")
    import torch

    from dllmq.env import compute_facts
    from dllmq.models.loading import copy_is_complete, smollm2_copy

    facts = compute_facts()
    result = {"cpu": facts["cpu"], "cores": os.cpu_count(), "torch_threads": facts["threads"],
              "torch": torch.__version__, "load_before": round(os.getloadavg()[0], 2), "budget_s": BUDGET_S,
              "notebooks": {}}
    print(f"load average before: {result['load_before']:.2f} (on {result['cores']} cores); {result['cpu']}", flush=True)
    out = Path(args.out)
    previous = json.loads(out.read_text()).get("notebooks", {}) if args.notebooks and out.is_file() else {}
    out.parent.mkdir(parents=True, exist_ok=True)
    for path in paths:
        load = round(os.getloadavg()[0], 2)
        copy_before = copy_is_complete(smollm2_copy())
        try:
            timing = {**time_notebook(path, args.timeout), "load_before": load, "smollm2_copy_before": copy_before}
        except Exception as exc:  # a failing notebook is recorded; the others still run
            last = (str(exc).strip().splitlines() or [""])[-1][:200]
            timing = {"error": f"{type(exc).__name__}: {last}", "load_before": load}
            print(f"{path.name:34s} FAILED  {timing['error']}", flush=True)
        else:
            top = timing["slowest_cells"][0]
            print(f"{path.name:34s} {timing['seconds']:7.1f} s  {'ok' if timing['within_budget'] else 'OVER'}"
                  f"   slowest cell {top['cell']} ({top['seconds']:.1f} s): {top['last_line']}", flush=True)
        result["notebooks"][path.name] = timing
        # written after every notebook (a partial run keeps the other notebooks' earlier times)
        out.write_text(json.dumps({**result, "notebooks": {**previous, **result["notebooks"]}}, indent=2) + "\n")
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
