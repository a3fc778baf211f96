"""Resumable sweeps: a grid of cells (model x recipe x task x variant) run into a results store.

A cell is the unit of work and of durability: `cell_fn(cell)` returns its metric rows, and the store
writes them in one atomic append. Before running, the sweep reads which cells are complete and skips
them, so a run killed at any point (even mid-cell) resumes without losing or duplicating a result.
`shard_cells(cells, i, n)` picks a deterministic subset for job arrays; shards write their own store
files, and `merge_stores` joins them.
"""
from __future__ import annotations

import hashlib
import itertools
import platform
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Sequence, Union

from tqdm.auto import tqdm

from .store import ResultStore

SHARD_BY = ("group", "cell")


def format_variant(options: Optional[dict]) -> str:
    """Canonical variant string of extra cell knobs: sorted "key=value" pairs joined by commas."""
    if not options:
        return ""
    for key, value in options.items():
        if any(c in f"{key}{value}" for c in ",="):
            raise ValueError(f"variant option {key}={value!r} may not contain ',' or '='")
    return ",".join(f"{k}={options[k]}" for k in sorted(options))


def parse_variant(variant: str) -> dict:
    """Inverse of format_variant; values that look like ints/floats become numbers."""
    options = {}
    for part in filter(None, variant.split(",")):
        if "=" not in part:
            raise ValueError(f"variant={variant!r}: each part must be key=value, got {part!r}")
        key, value = part.split("=", 1)
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                continue
        options[key] = value
    return options


@dataclass(frozen=True)
class Cell:
    """One unit of a sweep. recipe "fp" means the unquantized model."""

    model: str
    recipe: str
    task: str
    variant: str = ""

    @property
    def key(self) -> str:
        return f"{self.model}|{self.recipe}|{self.task}|{self.variant}"

    @property
    def id(self) -> str:
        """Stable short id (sha1 of the key): the same cell has the same id in every process."""
        return hashlib.sha1(self.key.encode("utf-8")).hexdigest()[:16]

    @property
    def options(self) -> dict:
        return parse_variant(self.variant)

    @property
    def group(self) -> tuple:
        """Cells that share a (quantized) model: a runner quantizes once per group."""
        return self.model, self.recipe, self.variant


def make_cell(model: str, recipe: str, task: str, **options) -> Cell:
    return Cell(model, recipe, task, format_variant(options))


def grid(models: Sequence[str], recipes: Sequence[str], tasks: Sequence[str],
         variants: Sequence[dict] = ({},)) -> list:
    """All cells of the product models x recipes x variants x tasks, grouped so a model is quantized once."""
    for name, values in (("models", models), ("recipes", recipes), ("tasks", tasks)):
        if isinstance(values, str) or not len(values):
            raise ValueError(f"{name} must be a non-empty list of strings, got {values!r}")
    return [make_cell(m, r, t, **v) for m, r, v, t in itertools.product(models, recipes, variants, tasks)]


def parse_shard(spec: Union[str, tuple, None]) -> Optional[tuple]:
    """"i/n" -> (i, n) with 0 <= i < n (SLURM array ids 0..n-1)."""
    if spec is None or isinstance(spec, tuple):
        return spec
    try:
        i, n = (int(x) for x in str(spec).split("/"))
    except ValueError:
        raise ValueError(f"shard={spec!r} must look like 'i/n' with integers, e.g. '0/4'") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard={spec!r}: need n >= 1 and 0 <= i < n")
    return i, n


def shard_cells(cells: Sequence[Cell], index: int, count: int, by: str = "group") -> list:
    """The deterministic share of shard `index` of `count`.

    by="group": whole (model, recipe, variant) groups are dealt round-robin in sorted order, so each
    shard quantizes a model once (falls back to by="cell" when there are fewer groups than shards);
    by="cell": cells are dealt round-robin in sorted-key order. The union over all shards is the grid."""
    if by not in SHARD_BY:
        raise ValueError(f"by={by!r} is not allowed; allowed: {SHARD_BY}")
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard index={index}, count={count}: need count >= 1 and 0 <= index < count")
    groups = sorted({c.group for c in cells})
    if by == "group" and len(groups) >= count:
        mine = set(groups[index::count])
        return [c for c in cells if c.group in mine]
    ordered = sorted(cells, key=lambda c: c.key)
    mine_keys = {c.key for c in ordered[index::count]}
    return [c for c in cells if c.key in mine_keys]


def collect_versions() -> dict:
    """Versions and compute facts written with every result (what produced a number matters when comparing
    runs): python, dllmq, torch, transformers, lm_eval, and threads / cpu / cpu_capability (env.compute_facts)."""
    import importlib

    from ..env import compute_facts

    versions = {"python": platform.python_version()}
    for name in ("dllmq", "torch", "transformers", "lm_eval"):
        try:
            versions[name] = getattr(importlib.import_module(name), "__version__", "installed")
        except Exception:
            versions[name] = None
    return {**versions, **compute_facts()}


def rows_from(result) -> list:
    """Accept a DataFrame (task, metric, value[, stderr, n, category]) or a list of dicts."""
    if hasattr(result, "to_dict"):
        result = result.to_dict("records")
    rows = list(result)
    for row in rows:
        if not isinstance(row, dict):
            raise TypeError(f"a cell function must return dicts or a DataFrame, got a {type(row).__name__}")
    return rows


@dataclass
class SweepSummary:
    total: int
    skipped: int  # already stored before this run
    ran: int
    failed: list = field(default_factory=list)  # (cell key, error message)
    seconds: float = 0.0

    def __str__(self) -> str:
        text = f"{self.total} cells: {self.skipped} already stored, {self.ran} run now"
        if self.failed:
            text += f", {len(self.failed)} FAILED: " + "; ".join(f"{k}: {e}" for k, e in self.failed)
        return text + f" ({self.seconds:.1f} s)"


def run_sweep(cells: Iterable[Cell], cell_fn: Callable, store: Union[str, ResultStore], *,
              shard: Union[str, tuple, None] = None, shard_by: str = "group", keep_going: bool = False,
              progress: bool = True, desc: str = "sweep") -> SweepSummary:
    """Run every cell not yet in `store` through `cell_fn(cell) -> rows`; append each cell atomically.

    cell_fn may define `settings(cell) -> dict` (written with every record). A failing cell raises unless
    keep_going=True, which records it in the summary (and in no store line) and moves on.

    The whole grid is checked before any cell runs (`validate.validate_cells`): a bad recipe, task or variant
    anywhere raises GridError listing every bad cell, with nothing evaluated. A cell function with
    `checks_cells = True` (the built-in CellRunner) gets each cell checked as that runner reads it; any other
    cell function gives the cells its own meaning, so only their structure is checked.

    Data parallel (torchrun / `accelerate launch`, WORLD_SIZE > 1): rank 0 reads which cells are done and
    broadcasts it; every process then runs every remaining cell (quantizing the same model deterministically;
    lm-eval shards the documents of each task over the processes and gathers the metrics on rank 0), and only
    rank 0 appends to the store, with `processes` (the world size) in each record's settings. A failure that
    hits one process only (out of memory) stops the launch: torchrun ends every process, and the rerun
    resumes."""
    from ..env import barrier, broadcast, launch
    from .validate import validate_cells

    if not callable(cell_fn):
        raise TypeError(f"cell_fn={cell_fn!r} must be callable: cell -> metric rows (e.g. CellRunner())")
    store = store if isinstance(store, ResultStore) else ResultStore(store)
    cells = validate_cells(dict.fromkeys(validate_cells(cells, builtin_runner=False)),
                           builtin_runner=bool(getattr(cell_fn, "checks_cells", False)))  # unique, in order
    if shard is not None:
        cells = shard_cells(cells, *parse_shard(shard), by=shard_by)
    rank, world, _ = launch()
    if rank == 0:
        store.repair()  # one writer per store file: cut a torn tail left by a crash before appending
    # rank 0 decides what is done and every process runs the same cells, in the same order: each cell's
    # evaluation is a collective (lm-eval splits its documents), so the processes must never disagree
    done = broadcast(store.done_cells() if rank == 0 else None)
    todo = [c for c in cells if c.id not in done]
    summary = SweepSummary(total=len(cells), skipped=len(cells) - len(todo), ran=0)
    versions = collect_versions()
    settings_of = getattr(cell_fn, "settings", None)
    start = time.perf_counter()
    bar = tqdm(total=len(cells), initial=summary.skipped, desc=desc, unit="cell", disable=not progress or rank > 0)
    try:
        for cell in todo:
            bar.set_postfix_str(f"left={len(cells) - bar.n} {cell.recipe}/{cell.task}", refresh=True)
            try:
                result = cell_fn(cell)
                rows = rows_from(result) if rank == 0 else []
            except Exception as error:
                if not keep_going:
                    raise
                summary.failed.append((cell.key, f"{type(error).__name__}: {error}"))
                bar.update(1)
                continue
            if rank == 0:
                settings = settings_of(cell) if callable(settings_of) else {}
                store.append_cell(cell.id, rows, model=cell.model, recipe=cell.recipe, variant=cell.variant,
                                  settings={"cell_task": cell.task, "processes": world, **settings},
                                  versions=versions)
            summary.ran += 1
            bar.update(1)
    finally:
        bar.close()
    barrier()  # every process returns once rank 0 has written the last cell: the store is complete to read
    summary.seconds = time.perf_counter() - start
    return summary
