"""Every PTQ recipe of the kit on SmolLM2-135M (offline GGUF; a real AR model with massive activations).

    .venv/bin/python benchmarks/smollm2_recipes.py [--n 16] [--len 256] [--eval-tokens 4096] [--steps 256]
        [--settings w4a16g128,w3a16g128,w8a8,w4a4] [--out results/smollm2_recipes.csv]

Per recipe: relative logits error vs the FP model and next-token perplexity on the held-out part of the
bundled English text (never used for calibration), and the quantization time as a ratio of RTN's at the
same setting (same process). Weight-only settings run RTN, GPTQ and AWQ; weight-activation settings run
RTN, SmoothQuant, QuaRot and DuQuant, each the paper's preset fitted to SmolLM2's sizes (`Recipe.paper(..., model=...)`).
Not part of `python -m benchmarks` (several minutes on a CPU).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from dllmq.calibration import CalibSpec, calibration_for, load_text
from dllmq.lab.layers import perplexity
from dllmq.models import load_model
from dllmq.quant import Recipe, quantize
from dllmq.quant.report import relative_l2_error

WEIGHT_ONLY = ("rtn", "gptq", "awq")
WEIGHT_ACTIVATION = ("rtn", "smoothquant", "quarot", "duquant")


def methods_for(setting: str) -> tuple:
    """Weight-only methods for a W*A16 setting, weight-activation methods otherwise."""
    return WEIGHT_ONLY if "a16" in setting else WEIGHT_ACTIVATION


@torch.no_grad()
def logits(model, ids: torch.Tensor) -> torch.Tensor:
    return model(ids).logits.float()


def run(settings, n: int, seq_len: int, eval_tokens: int, steps: int) -> pd.DataFrame:
    model, tok = load_model("smollm2-135m", device="cpu")
    spec = CalibSpec("text", n, seq_len, 0)  # English prose; every recipe below names it
    calib = calibration_for(spec, tok)
    test_ids = tok(load_text("test"), return_tensors="pt", add_special_tokens=False).input_ids[0][:eval_tokens]
    windows = test_ids[: (test_ids.numel() // seq_len) * seq_len].view(-1, seq_len)[:4]
    ref = logits(model, windows)
    rows = [{"setting": "FP", "method": "FP", "logits_error": 0.0, "perplexity": perplexity(model, test_ids),
             "seconds": 0.0, "x_rtn": float("nan"), "recipe": "fp"}]
    for setting in settings:
        rtn_time = None
        for method in methods_for(setting):
            recipe = Recipe.paper(method, setting, model=model, calib=spec,
                                  **({"rotation_steps": steps} if method == "duquant" else {}))
            t0 = time.perf_counter()
            qmodel, _ = quantize(model, recipe, calib)
            seconds = time.perf_counter() - t0
            rtn_time = seconds if method == "rtn" else rtn_time
            rows.append({"setting": setting, "method": method, "logits_error": relative_l2_error(ref, logits(qmodel, windows)),
                         "perplexity": perplexity(qmodel, test_ids), "seconds": seconds,
                         "x_rtn": seconds / rtn_time, "recipe": str(recipe)})
            print(f"{setting:>10} {method:<12} error {rows[-1]['logits_error']:.3f}  ppl {rows[-1]['perplexity']:.2f}"
                  f"  {seconds:.1f} s", flush=True)
            del qmodel
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=16, help="calibration sequences")
    ap.add_argument("--len", type=int, default=256, help="calibration and evaluation window length")
    ap.add_argument("--eval-tokens", type=int, default=4096, help="held-out tokens for perplexity")
    ap.add_argument("--steps", type=int, default=256, help="DuQuant greedy rotation steps (paper: 256)")
    ap.add_argument("--settings", default="w4a16g128,w3a16g128,w8a8,w4a4")
    ap.add_argument("--out", default="results/smollm2_recipes.csv")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    table = run(args.settings.split(","), args.n, args.len, args.eval_tokens, args.steps)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(table.drop(columns=["recipe"]).round(3).to_string(index=False))
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
