"""`dllmq demo` (the README's `make demo`): the main job on the embedded tiny dLLM.

1. a denoising run, printed step by step;
2. the full-precision tiny model on TinyBench, per category;
3. every PTQ method at W4A16, W3A16, W8A8 and W4A4 on TinyBench, a results table against FP and two
   figures (a resumable store under --out; --no-grid skips this part). About three minutes on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Optional

import pandas as pd

from .decoding import generate
from .models import load_model
from .viz.decoding import trace_lines

DEMO_THREADS = 2  # the README table's thread count; other counts change a few cells in the last digit or more
DEMO_PROMPT = "Question: There are 4 boxes with 6 apples in each. How many apples are there?\nAnswer:"


def show_denoising(model, tok, prompt: str = DEMO_PROMPT, gen_length: int = 24) -> str:
    """Print the canvas before every step of one low-confidence run; returns the answer."""
    gen = generate(model, tok, [prompt], steps=gen_length, gen_length=gen_length, block_length=gen_length,
                   trace=True)
    print(f"prompt: {prompt!r}   ({gen_length} masks, {gen_length} steps, low_confidence remasking)")
    for line in trace_lines(gen, tok, model.config.mask_token_id):
        print("  " + line)
    print(f"answer: {gen.text[0]!r}\n")
    return gen.text[0]


def run_demo(out_dir: str = "results/demo", limit=None, model: Optional[str] = None, reduced: bool = False,
             progress: bool = True, runner=None) -> pd.DataFrame:
    """Run (or resume) the demo grid; write results.{jsonl,csv,md} and figures into out_dir; print the table."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from .sweeps import ResultStore, run_sweep
    from .sweeps.demo import compute_settings, demo_cells, results_table, to_markdown
    from .sweeps.runner import CellRunner
    from .viz import results as figures

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
    settings = compute_settings(store.records(), {c.id for c in cells})
    if len(settings) > 1:  # bit-identical numbers need one thread count and one CPU kind (README, "The demo")
        print(f"note: this table mixes cells computed under {len(settings)} compute settings {settings}; delete "
              f"{out} and rerun for a table from one run")
    shown = table.drop(columns=["recipe"]).round(1)
    print(shown.to_string(index=False))
    print(f"-> {out / 'results.md'}, {out / 'results.csv'}, {out / 'accuracy_by_category.png'}, "
          f"{out / 'drops_vs_paper.png'}")
    return table


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="dllmq demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny", help="model name (default: the embedded tiny dLLM)")
    ap.add_argument("--prompt", default=DEMO_PROMPT)
    ap.add_argument("--no-eval", action="store_true", help="skip the TinyBench evaluation")
    ap.add_argument("--no-grid", dest="grid", action="store_false",
                    help="skip the method x setting grid (denoising and FP TinyBench only)")
    ap.add_argument("--grid", dest="grid", action="store_true", help=argparse.SUPPRESS)  # the default; kept for old commands
    ap.add_argument("--limit", type=int, default=None, help="TinyBench items per task (default: all)")
    ap.add_argument("--out", default="results/demo", help="where the grid writes its store, table and figures")
    ap.add_argument("--threads", type=int, default=DEMO_THREADS,
                    help=f"CPU threads (default {DEMO_THREADS}): a seeded run is bit-identical at one thread count")
    ap.add_argument("--verbose", action="store_true", help="keep the libraries' own progress bars and logs")
    args = ap.parse_args(argv)
    if args.threads < 1:
        raise ValueError(f"--threads={args.threads} must be >= 1")
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(args.threads)  # BLAS reductions split by thread count: pin it (README, "The demo")
    try:
        return _run(args)
    finally:
        torch.set_num_threads(previous)


def _run(args) -> int:
    if not args.verbose:
        from .env import quiet_libraries

        quiet_libraries()
    t0 = time.time()
    model, tok = load_model(args.model, device="cpu")
    print(f"== 1. denoising on {args.model} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters)")
    show_denoising(model, tok, args.prompt)
    if not args.no_eval:
        from .eval import evaluate, category_summary
        print("== 2. full-precision TinyBench")
        table = evaluate(model, tok, tasks=["tinybench"], limit=args.limit, progress=args.verbose)
        print(category_summary(table).to_string(index=False), "\n")
    if args.grid:
        print("== 3. every method x setting on TinyBench (resumable store in", args.out + ")")
        run_demo(out_dir=args.out, limit=args.limit)
    print(f"demo finished in {time.time() - t0:.0f} s ({args.threads} threads)")
    return 0
