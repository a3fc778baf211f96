"""`dllmq sweep`: run a sweep preset (or a grid file) into a results store; shard, merge, show.

    dllmq sweep list                                   the presets
    dllmq sweep --preset table3 --model GSAI-ML/LLaDA-8B-Instruct --store results/t3.jsonl
    dllmq sweep --preset demo --model tiny --limit 20  (run is the default sub-command)
    dllmq sweep --preset table1 --model ... --shard 3/8          job-array element 3 of 8
    dllmq sweep merge --out results/t1.jsonl results/t1.shard*.jsonl
    dllmq sweep show results/t1.jsonl                  the stored records as a table
    dllmq sweep --grid grid.json --cell-fn mymodule:my_cell --store out.jsonl

A grid file is JSON: {"models": [...], "recipes": [...], "tasks": [...], "variants": [{...}, ...]}.
`--cell-fn module:function` replaces the built-in cell runner with your own `function(cell) -> rows`.
With --shard and no --store, each shard writes `<store>.shard<i>of<n>.jsonl` next to the default store.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from ..env import launch
from .store import ResultStore, merge_stores
from .sweep import grid, parse_shard, run_sweep, shard_cells
from .validate import read_grid_file

SUBCOMMANDS = ("run", "list", "merge", "show", "repair")


def load_callable(spec: str):
    """"package.module:function" -> the function."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"cell-fn={spec!r} must look like 'module.path:function'")
    return getattr(importlib.import_module(module_name), attr)


def load_grid_file(path: str, builtin_runner: bool = True) -> list:
    """The cells of a JSON grid file, every one checked before anything runs (validate.read_grid_file)."""
    spec = read_grid_file(path, builtin_runner=builtin_runner)
    return grid(spec["models"], spec["recipes"], spec["tasks"], spec["variants"])


def default_store(preset: str, model: str, shard) -> Path:
    slug = model.replace("/", "_")
    base = Path("results") / f"{preset}-{slug}"
    if shard is None:
        return base.with_suffix(".jsonl")
    i, n = shard
    return Path(f"{base}.shard{i}of{n}.jsonl")


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dllmq sweep", description="run a resumable sweep into a results store")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", help="a preset name (see `dllmq sweep list`)")
    src.add_argument("--grid", help="JSON grid file with models, recipes, tasks[, variants]")
    p.add_argument("--model", default="tiny", help="model name or hub id for a preset (default: tiny)")
    p.add_argument("--store", help="results file (JSON lines); default results/<preset>-<model>.jsonl")
    p.add_argument("--shard", help="run only shard i of n, as 'i/n' with 0 <= i < n")
    p.add_argument("--shard-by", default="group", choices=("group", "cell"))
    p.add_argument("--limit", type=float, help="documents per task (int) or fraction (<1); default: all")
    p.add_argument("--reduced", action="store_true", help="the preset's small grid (CI / smoke)")
    p.add_argument("--cell-fn", help="module:function replacing the built-in cell runner")
    p.add_argument("--device", help="cpu / cuda (default: cuda when available)")
    p.add_argument("--keep-going", action="store_true", help="record failing cells and continue")
    p.add_argument("--dry-run", action="store_true", help="print the cells and exit")
    p.add_argument("--no-progress", action="store_true")
    return p


def _limit(value):
    if value is None:
        return None
    return int(value) if float(value).is_integer() and value >= 1 else float(value)


def cmd_run(argv: list) -> int:
    args = _run_parser().parse_args(argv)
    shard = parse_shard(args.shard)
    limit = _limit(args.limit)
    if args.grid:
        cells = load_grid_file(args.grid, builtin_runner=not args.cell_fn)
        runner = None
        name = Path(args.grid).stem
    else:
        from .presets import get_preset

        preset = get_preset(args.preset)
        cells = preset.cells(args.model, reduced=args.reduced)
        runner = None if args.cell_fn else preset.runner(limit=limit, device=args.device)
        name = args.preset
    if args.cell_fn:
        runner = load_callable(args.cell_fn)
    if runner is None:
        from .runner import CellRunner

        runner = CellRunner(limit=limit, device=args.device)
    store = ResultStore(args.store or default_store(name, args.model, shard))
    if args.dry_run:
        if shard is not None:
            cells = shard_cells(cells, *shard, by=args.shard_by)
        for cell in cells:
            print(cell.key)
        print(f"{len(cells)} cells -> {store.path}")
        return 0
    summary = run_sweep(cells, runner, store, shard=shard, shard_by=args.shard_by, keep_going=args.keep_going,
                        progress=not args.no_progress, desc=name)
    if launch()[0] == 0:  # a data-parallel launch: one report, from the rank that wrote the store
        print(f"{summary} -> {store.path}")
    return 1 if summary.failed else 0


def cmd_list(argv: list) -> int:
    from .presets import PRESETS

    for name, preset in PRESETS.items():
        print(f"{name:<18} {preset.description}")
    return 0


def cmd_merge(argv: list) -> int:
    p = argparse.ArgumentParser(prog="dllmq sweep merge", description="merge shard stores, deduplicated by key")
    p.add_argument("--out", required=True)
    p.add_argument("sources", nargs="+")
    args = p.parse_args(argv)
    merged = merge_stores(args.sources, args.out)
    print(f"merged {len(args.sources)} stores -> {merged.path} ({len(merged)} records)")
    return 0


def cmd_show(argv: list) -> int:
    p = argparse.ArgumentParser(prog="dllmq sweep show")
    p.add_argument("store")
    args = p.parse_args(argv)
    if not Path(args.store).is_file():
        raise FileNotFoundError(f"store {args.store} does not exist (a sweep writes it; `dllmq sweep list` shows "
                                "the presets)")
    store = ResultStore(args.store)
    frame = store.to_frame()
    print(frame[["model", "recipe", "task", "metric", "variant", "value", "stderr", "n"]].to_string(index=False))
    if store.skipped_lines or store.incomplete_cells:
        print(f"(ignored {store.skipped_lines} torn lines, {store.incomplete_cells} incomplete cells)")
    return 0


def cmd_repair(argv: list) -> int:
    p = argparse.ArgumentParser(prog="dllmq sweep repair")
    p.add_argument("store")
    args = p.parse_args(argv)
    print(f"removed {ResultStore(args.store).repair()} invalid or incomplete lines from {args.store}")
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else "run"
    rest = argv[1:] if argv and argv[0] in SUBCOMMANDS else argv
    return {"run": cmd_run, "list": cmd_list, "merge": cmd_merge, "show": cmd_show, "repair": cmd_repair}[command](rest)


if __name__ == "__main__":
    sys.exit(main())
