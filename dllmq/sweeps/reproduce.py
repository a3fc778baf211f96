"""`dllmq reproduce`: regenerate a table of the paper, then print paper vs measured.

    dllmq reproduce table3 --model GSAI-ML/LLaDA-8B-Instruct      exactly Table 3's cells (GPU, online)
    dllmq reproduce table1 --model tiny --limit 20 --reduced     the TinyBench analogue on a CPU
    dllmq reproduce all --model GSAI-ML/LLaDA-8B-Base            Tables 1-4 (Dream: Table 5)
    dllmq reproduce check                                        the paper's arithmetic and misprints

Every cell (model x recipe x task) is quantized with `Recipe.paper(...)`, evaluated with the paper's
task presets (Table A1) through lm-eval, and appended to a results store, so an interrupted run resumes
where it stopped. Data parallel: run the same command under `torchrun --nproc_per_node N -m dllmq ...`
(every process quantizes the same model, lm-eval shards the documents of each task over the processes,
rank 0 writes the store and prints the comparison; see docs/cluster.md).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from .store import ResultStore
from ..env import launch
from .sweep import run_sweep

TABLE_NAMES = tuple(f"table{n}" for n in (1, 2, 3, 4, 5))


def tables_for(model: str) -> tuple:
    """The tables a model appears in: Dream -> Table 5; LLaDA (and tiny analogues) -> Tables 1-4."""
    from ..eval.presets import family_of_name

    return (5,) if family_of_name(model) == "dream" else (1, 2, 3, 4)


def default_store(table: int, model: str) -> Path:
    return Path("results") / f"table{table}-{model.replace('/', '_')}.jsonl"


def reproduce(table: int, model: str, *, store: Optional[str] = None, limit=None, reduced: bool = False,
              shard=None, device: Optional[str] = None, paper_model: Optional[str] = None,
              progress: bool = True, show: bool = True, runner=None):
    """Run Table `table`'s cells for `model` into `store`; return (comparison DataFrame, store).
    In a data-parallel launch the other ranks help evaluate and return (None, store): rank 0 compares."""
    from ..models import is_tiny
    from ..paper.compare import compare
    from .presets import get_preset

    preset = get_preset(f"table{table}")
    cells = preset.cells(model, reduced=reduced)
    store = ResultStore(store or default_store(table, cells[0].model))
    runner = runner or preset.runner(limit=limit, device=device)
    summary = run_sweep(cells, runner, store, shard=shard, progress=progress, desc=f"table{table}")
    if launch()[0] > 0:
        return None, store
    if show:
        print(f"{summary} -> {store.path}")
    frame = store.to_frame()
    frame = frame[frame["cell"].isin({c.id for c in cells})]
    if frame.empty:
        return None, store
    if paper_model is None and is_tiny(cells[0].model):
        paper_model = "Dream-7B" if table == 5 else "LLaDA-8B-Instruct"
    result = compare(frame, table=table, paper_model=paper_model, show=show)
    return result, store


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dllmq reproduce", description=__doc__.strip().splitlines()[0])
    p.add_argument("what", help=f"one of {', '.join(TABLE_NAMES)}, all, check")
    p.add_argument("--model", default="tiny", help="hub id, local dir, or tiny (default)")
    p.add_argument("--store", help="results file; default results/table<n>-<model>.jsonl")
    p.add_argument("--limit", type=float, help="documents per task (int) or fraction (<1)")
    p.add_argument("--reduced", action="store_true", help="FP + one method per bit setting (CI)")
    p.add_argument("--shard", help="i/n: run only this shard of the table's cells")
    p.add_argument("--device", help="cpu / cuda (default: cuda when available)")
    p.add_argument("--paper-model", help="paper row to compare with (LLaDA-8B, LLaDA-8B-Instruct, Dream-7B)")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.what == "check":
        from ..paper import tables

        print(tables.report())
        return 0
    if args.what == "all":
        tables = tables_for(args.model)
    elif args.what in TABLE_NAMES:
        tables = (int(args.what[-1]),)
    else:
        print(f"dllmq reproduce: what={args.what!r} is unknown; allowed: {', '.join(TABLE_NAMES)}, all, check",
              file=sys.stderr)
        return 2
    limit = None if args.limit is None else (int(args.limit) if args.limit >= 1 else args.limit)
    for table in tables:
        store = args.store if args.store and len(tables) == 1 else None
        if args.store and len(tables) > 1:
            store = str(Path(args.store).with_suffix("")) + f"-table{table}.jsonl"
        reproduce(table, args.model, store=store, limit=limit, reduced=args.reduced, shard=args.shard,
                  device=args.device, paper_model=args.paper_model, progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
