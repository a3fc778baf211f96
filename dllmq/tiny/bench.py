"""Build TinyBench: fixed jsonl test sets drawn from the held-out side of the task generators.

    python -m dllmq.tiny.bench --out dllmq/eval/data      (the files shipped with the package)

Files: general.jsonl (multiple choice), math.jsonl, math_fewshot.jsonl (the pool lm-eval draws shots
from), code.jsonl (two items of each one-step and each two-step kind, `coding.BENCH_KINDS`). Kinds are
balanced; prompts are unique across all files; every prompt is held out (`items.is_heldout`), so none
occurs in the training corpus.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Optional

from . import arithmetic, coding, general
from .items import Item, is_heldout

SIZES = {"general": 150, "math": 72, "math_fewshot": 12, "code": 114}
SEED = 20250820
MODULES = {"general": general, "math": arithmetic, "math_fewshot": arithmetic, "code": coding}


def _draw(module, kind: str, rng: random.Random, taken: set) -> Item:
    for _ in range(100_000):
        item = module.sample(rng, kind)
        if is_heldout(item.prompt) and item.prompt not in taken:
            taken.add(item.prompt)
            return item
    raise RuntimeError(f"could not draw a new held-out {kind} item")


def build_split(name: str, n: int, rng: random.Random, taken: set) -> list:
    """`n` held-out items of split `name`, kinds balanced (round robin over the module's kinds)."""
    module = MODULES[name]
    kinds = list(getattr(module, "BENCH_KINDS", module.KINDS))  # code: + the two-step kinds never trained on
    rng.shuffle(kinds)
    items = [_draw(module, kinds[i % len(kinds)], rng, taken) for i in range(n)]
    rows = []
    for i, item in enumerate(items):
        row = {"id": f"{name}-{i:03d}", **item.to_dict()}
        row.pop("task")
        rows.append(row)
    return rows


def build_tinybench(sizes: Optional[dict] = None, seed: int = SEED) -> dict:
    """split name -> list of rows (dicts), deterministic for a given seed."""
    sizes = {**SIZES, **(sizes or {})}
    rng, taken = random.Random(seed), set()
    return {name: build_split(name, n, rng, taken) for name, n in sizes.items()}


def write_tinybench(out: str, seed: int = SEED) -> list:
    """Write one jsonl per split into `out`; returns the paths."""
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, rows in build_tinybench(seed=seed).items():
        path = out_dir / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        paths.append(path)
    return paths


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dllmq.tiny.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    for path in write_tinybench(args.out, args.seed):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
