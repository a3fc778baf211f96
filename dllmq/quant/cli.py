"""`dllmq quantize`: quantize a model with a recipe string, print the report, save the result.

    dllmq quantize --model tiny --recipe gptq:w4a16g128 --calib tiny --out runs/tiny-gptq-w4
    dllmq quantize --model GSAI-ML/LLaDA-8B-Instruct --paper gptq:w4a16g128 --device cuda --out runs/llada-gptq
    dllmq quantize --model smollm2-135m --recipe awq:w3a16g128 --calib text --seq-len 256 --n-samples 16 --out DIR
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional

from .recipe import Recipe


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dllmq quantize", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--recipe", help="recipe string, e.g. gptq:w4a16g128 or awq:w3a16g128:calib=text")
    what.add_argument("--paper", help="paper preset METHOD:SETTING[:code], e.g. duquant:w4a4 or gptq:w4a16g128:code")
    p.add_argument("--model", default="tiny", help="model name for dllmq.load_model (default: tiny)")
    p.add_argument("--calib", default=None, help="calibration source (overrides the recipe's): "
                   "wikitext2, pileval, c4, text, tiny")
    p.add_argument("--n-samples", type=int, default=None)
    p.add_argument("--seq-len", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=None, help="compute device (blocks stream to it); default: auto")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--packed", action="store_true", help="store <=4-bit weight-only layers as packed int4")
    p.add_argument("--out", required=True, help="output directory")
    return p


def resolve_recipe(args) -> Recipe:
    if args.paper:
        parts = args.paper.split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"--paper={args.paper!r} must be METHOD:SETTING or METHOD:SETTING:code")
        recipe = Recipe.paper(parts[0], parts[1], variant=parts[2] if len(parts) == 3 else "paper")
    else:
        recipe = Recipe.parse(args.recipe)
    calib = {k: v for k, v in (("source", args.calib), ("n_samples", args.n_samples), ("seq_len", args.seq_len),
                               ("seed", args.seed)) if v is not None}
    if calib:
        from dataclasses import replace
        recipe = recipe.with_(calib=replace(recipe.calib, **calib))
    return recipe


def main(argv: Optional[list] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        recipe = resolve_recipe(args)
    except (ValueError, TypeError) as err:
        print(f"dllmq quantize: {err}", file=sys.stderr)
        return 2
    from ..calibration import OfflineError
    from ..models import load_model
    from . import quantize
    from .save import save_quantized

    model, tok = load_model(args.model, device=args.device or "cpu")
    print(f"quantizing {args.model} with {recipe} (calibration: {recipe.calib})")
    try:
        model, report = quantize(model, recipe, tok=tok, device=args.device, batch_size=args.batch_size, inplace=True)
    except (ValueError, OfflineError) as err:  # recipe does not fit the model, seq_len too long, offline hub...
        print(f"dllmq quantize: {err}", file=sys.stderr)
        return 2
    print(report)
    out = save_quantized(model, args.out, tok=tok, recipe=recipe, report=report, packed=args.packed)
    print(f"saved to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
