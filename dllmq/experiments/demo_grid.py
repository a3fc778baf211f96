"""The demo grid (`make demo`): every method at every setting it runs at, on the tiny model, on a CPU.

    run_demo(out_dir="results/demo", limit=None)

Weight-only methods (GPTQ, AWQ) at W4A16 and W3A16, weight-activation methods (SmoothQuant, QuaRot,
DuQuant) at W8A8 and W4A4, RTN at all four; each evaluated on TinyBench (general: likelihood multiple
choice, math and code: generation). Results go to a store in `out_dir` (a rerun resumes), then a
results table (markdown + csv, accuracy per category, average, drop vs FP and the paper's band) and two
figures are written, and the table is printed.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import pandas as pd

from .grids import Preset, recipe_for, register, tiny_default
from .store import ResultStore
from .sweep import grid, run_sweep

SETTINGS = ("w4a16g128", "w3a16g128", "w8a8", "w4a4")
METHODS = {"rtn": SETTINGS, "gptq": SETTINGS[:2], "awq": SETTINGS[:2], "smoothquant": SETTINGS[2:],
           "quarot": SETTINGS[2:], "duquant": SETTINGS[2:]}
TASKS = ("tinybench",)
CATEGORIES = ("general", "math", "code")


def demo_recipes(model: str) -> list:
    """FP, then each method at each of its settings (recipes adapted to the tiny model)."""
    return ["fp"] + [recipe_for(model, m, s) for m, settings in METHODS.items() for s in settings]


def demo_cells(model: Optional[str] = None, reduced: bool = False) -> list:
    model = model or tiny_default()
    recipes = demo_recipes(model)
    if reduced:  # FP, one weight-only and one W-A recipe
        recipes = [recipes[0], recipe_for(model, "gptq", "w4a16g128"), recipe_for(model, "duquant", "w4a4")]
    return grid([model], recipes, list(TASKS))


register(Preset("demo", "every method x setting on the tiny model, TinyBench (the `make demo` grid)", demo_cells))


def results_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per recipe: accuracy (%) per category, their mean, drop vs FP (%) and the paper's band."""
    from .compare import recipe_row
    from .paper import band

    per_cat = frame.groupby(["recipe", "category"])["value"].mean().unstack("category") * 100
    per_cat = per_cat.reindex(columns=[c for c in CATEGORIES if c in per_cat.columns])
    per_cat["avg"] = per_cat.mean(axis=1)
    if "fp" not in per_cat.index:
        raise ValueError("the results hold no FP row; the demo grid always evaluates recipe 'fp'")
    fp_avg = per_cat.loc["fp", "avg"]
    per_cat["drop"] = (per_cat["avg"] / fp_avg - 1.0) * 100.0 if fp_avg > 0 else float("nan")
    per_cat.loc["fp", "drop"] = float("nan")
    per_cat["band"] = [band(d) for d in per_cat["drop"]]
    labels = [recipe_row(r) for r in per_cat.index]
    per_cat.insert(0, "setting", [s for s, _ in labels])
    per_cat.insert(0, "method", [m for _, m in labels])
    order = {r: i for i, r in enumerate(demo_recipes_order(per_cat.index))}
    per_cat = per_cat.sort_index(key=lambda idx: idx.map(order))
    return per_cat.reset_index()


def demo_recipes_order(recipes) -> list:
    method_rank = {m: i for i, m in enumerate(["fp", *METHODS])}
    return sorted(recipes, key=lambda r: (method_rank.get(r.split(":")[0], 99), r))


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub markdown table (no extra dependency)."""
    cols = ["method", "setting", *[c for c in CATEGORIES if c in table], "avg", "drop", "band", "recipe"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in table.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if c == "drop":
                cells.append("–" if pd.isna(v) else f"{v:+.1f}%")
            elif isinstance(v, float):
                cells.append(f"{v:.1f}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_demo(out_dir: str = "results/demo", limit=None, model: Optional[str] = None, reduced: bool = False,
             progress: bool = True, runner=None) -> pd.DataFrame:
    """Run (or resume) the demo grid; write results.{jsonl,csv,md} and figures into out_dir; print the table."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from . import figures
    from .runner import CellRunner

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cells = demo_cells(model, reduced)
    store = ResultStore(out / "results.jsonl")
    start = time.perf_counter()
    summary = run_sweep(cells, runner or CellRunner(limit=limit), store, progress=progress, desc="demo")
    frame = store.to_frame()
    frame = frame[frame["cell"].isin({c.id for c in cells})]
    table = results_table(frame)
    table.to_csv(out / "results.csv", index=False)
    (out / "results.md").write_text(f"# dllmq demo: {cells[0].model}, TinyBench, limit={limit}\n\n" + to_markdown(table))
    fig = figures.plot_accuracy_by_category(frame, metric=None, title=f"{cells[0].model}: TinyBench per category")
    fig.savefig(out / "accuracy_by_category.png", dpi=120)
    fig = figures.plot_demo_drops(table)
    fig.savefig(out / "drops_vs_paper.png", dpi=120)
    print(f"{summary}; total {time.perf_counter() - start:.0f} s")
    shown = table.drop(columns=["recipe"]).round(1)
    print(shown.to_string(index=False))
    print(f"-> {out / 'results.md'}, {out / 'results.csv'}, {out / 'accuracy_by_category.png'}, "
          f"{out / 'drops_vs_paper.png'}")
    return table
