"""Quantization time of the weight-activation methods, as ratios of RTN timed in the same process.

    .venv/bin/python benchmarks/bench_quant_time.py [--model tiny] [--smollm2] [--setting w4a4]
        [--n 8] [--len 128] [--steps 256]

Each method quantizes a fresh deep copy of the model with the paper's preset fitted to the model
(`Recipe.paper(method, setting, model=...)`: DuQuant's block size is reduced where the model is too small
for 128, QuaRot gets hadamard_fallback=orthogonal where the head count has no Hadamard matrix, e.g.
SmolLM2's 9 heads; a tiny model calibrates on its own corpus), so on the tiny model these are the demo's
recipes. RTN is given the same calibration tokens, so it also walks the blocks once (it measures per-layer
errors), which makes the ratio a fair comparison of the extra work each method does.
"""
from __future__ import annotations

import argparse
import copy
import time
from typing import Optional

import torch

from dllmq.calibration import CalibSpec, calibration_for
from dllmq.models import load_model
from dllmq.quant import Recipe, quantize

METHODS = ("rtn", "smoothquant", "quarot", "duquant")


def recipes(model, setting: str, steps: int = 256, calib: Optional[CalibSpec] = None) -> list:
    """The timed recipes: each method's paper preset fitted to `model` (calib: override the calibration set)."""
    return [Recipe.paper(m, setting, model=model, calib=calib, **({"rotation_steps": steps} if m == "duquant" else {}))
            for m in METHODS]


def time_methods(model, tok, setting: str, steps: int, calib: Optional[CalibSpec] = None) -> list:
    rows = []
    for recipe in recipes(model, setting, steps, calib):
        ids = calibration_for(recipe, tok)  # the same tokens for every method (one calibration spec)
        m = copy.deepcopy(model)
        t0 = time.perf_counter()
        quantize(m, recipe, ids, inplace=True)
        rows.append((str(recipe), time.perf_counter() - t0))
        del m
    return rows


def show(name: str, rows: list) -> None:
    base = rows[0][1]
    print(f"\n{name}: quantization time (ratio = time / RTN time, same process)")
    print(f"{'recipe':<64} {'seconds':>9} {'x RTN':>7}")
    for recipe, t in rows:
        print(f"{recipe:<64} {t:>9.2f} {t / base:>7.1f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny", help="tiny model name (tiny, tiny-random, ...)")
    ap.add_argument("--smollm2", action="store_true", help="also time SmolLM2-135M (slow on a CPU)")
    ap.add_argument("--setting", default="w4a4", choices=["w8a8", "w4a4"])
    ap.add_argument("--n", type=int, default=8, help="SmolLM2 calibration samples (English text)")
    ap.add_argument("--len", type=int, default=128, help="SmolLM2 calibration sequence length")
    ap.add_argument("--steps", type=int, default=256, help="DuQuant greedy rotation steps")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    model, tok = load_model(args.model, device="cpu")
    show(args.model, time_methods(model, tok, args.setting, args.steps))
    if args.smollm2:
        model, tok = load_model("smollm2-135m", device="cpu")
        show("smollm2-135m", time_methods(model, tok, args.setting, args.steps, CalibSpec("text", args.n, args.len)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
