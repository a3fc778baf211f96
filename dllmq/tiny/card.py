"""Measure a trained tiny model on TinyBench and write its `scores.json` and `MODEL_CARD.md`.

    python -m dllmq.tiny.card --model DIR        (DIR = a training output, e.g. dllmq/tiny/assets)
    python -m dllmq.tiny.card --model DIR --compare OTHER_RUN [--compare ...]

`--compare` measures other training runs (another seed, device or thread count) the same way and records
them in the card's reproducibility table, with each category's difference to the shipped model.
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from pathlib import Path
from typing import Optional

import torch

SCORES = "scores.json"
CARD = "MODEL_CARD.md"


def bench_fingerprint() -> str:
    """First 12 hex digits of the SHA-256 of the shipped TinyBench files: which test set a score is on."""
    import hashlib

    from ..eval.tasks import DATA_DIR

    digest = hashlib.sha256()
    for path in sorted(DATA_DIR.glob("*.jsonl")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def measure(model_dir: str, tasks=("tinybench_all",), limit=None) -> dict:
    """Full-precision TinyBench of the model in `model_dir` (fp32, CPU): per task and per category."""
    from ..eval import category_summary, evaluate
    from ..models import load_model

    model, tok = load_model(str(model_dir), device="cpu", dtype=torch.float32)
    start = time.time()
    table = evaluate(model, tok, tasks=list(tasks), limit=limit)
    seconds = time.time() - start
    heads = table[table.metric.isin(["acc", "exact_match", "pass@1"])]
    return {
        "tasks": {r.task: {"metric": r.metric, "value": round(r.value, 4), "stderr": round(r.stderr, 4),
                           "category": r.category} for r in heads.itertuples()},
        "categories": {r.category: {"value": round(r.value, 4), "stderr": round(r.stderr, 4)}
                       for r in category_summary(table).itertuples()},
        "eval_seconds": round(seconds, 1), "limit": limit, "threads": torch.get_num_threads(),
        "bench": bench_fingerprint(),
    }


def _size_mb(model_dir: Path) -> float:
    return sum(p.stat().st_size for p in model_dir.iterdir() if p.is_file()) / 2**20


def reproduction(run_dir: str, shipped: dict, limit=None) -> dict:
    """Scores of another training run of the recipe and their differences (points) to `shipped`."""
    recipe = json.loads((Path(run_dir) / "recipe.json").read_text())
    measured = measure(run_dir, tasks=("tinybench",), limit=limit)
    cats = measured["categories"]
    return {"bench": measured["bench"], "command": recipe["command"], "seed": recipe["seed"], "steps": recipe["steps"],
            "device": recipe["device"], "threads": recipe["threads"], "torch": recipe["torch"],
            "wall_minutes": round(recipe["wall_time_s"] / 60, 1), "categories": cats,
            "diff_points": {c: round(100 * (v["value"] - shipped["categories"][c]["value"]), 1)
                            for c, v in cats.items() if c in shipped["categories"]}}


def merge_reproductions(fresh: list, previous: list) -> list:
    """The new comparisons, then the earlier ones of other commands: a re-measure never drops a row.

    Earlier rows keep their own `bench` fingerprint, so the card can mark the ones scored on another TinyBench."""
    commands = {r["command"] for r in fresh}
    return list(fresh) + [r for r in previous if r["command"] not in commands]


def _reproductions_section(scores: dict) -> str:
    runs = scores.get("reproductions") or []
    if not runs:
        return ("## Reproducibility\nNo second training run is recorded yet: run the command above with another\n"
                "seed and `python -m dllmq.tiny.card --model dllmq/tiny/assets --compare RUN_DIR`.\n")
    cats = list(scores["categories"])
    head = "| run | " + " | ".join(cats) + " | wall |\n|---|" + "---|" * (len(cats) + 1)
    shipped = "| shipped | " + " | ".join(f"{100 * scores['categories'][c]['value']:.1f}" for c in cats) + " | |"
    earlier = [r for r in runs if r.get("bench") != scores.get("bench")]
    mark = lambda r: " †" if r in earlier else ""
    lines = [f"| seed {r['seed']}, {r['steps']} steps, {r['device']} ({r['threads']} thr.){mark(r)} | "
             + " | ".join(f"{100 * r['categories'][c]['value']:.1f} ({r['diff_points'][c]:+.1f})" for c in cats)
             + f" | {r['wall_minutes']} min |" for r in runs]
    worst = max(abs(d) for r in runs for d in r["diff_points"].values())
    return ("## Reproducibility (measured)\nOther runs of the training command, scored the same way; in brackets\n"
            f"the difference to the shipped model in points (largest: {worst:.1f}).\n\n"
            + "\n".join([head, shipped, *lines]) + "\n\n" + "\n".join(f"- `{portable_command(r)}`" for r in runs) + "\n"
            + ("\n† scored on an earlier version of TinyBench than the shipped row (bench fingerprint "
               f"{scores.get('bench')} now): its differences are to the shipped model's scores on that version.\n"
               if earlier else ""))


HISTORY = "## History"


def _decoding(task: str) -> str:
    """How a TinyBench generation task decodes, read from its task config (e.g. "40 tokens, 20 steps, blocks of 8")."""
    from ..eval.tasks import TASKS

    g = TASKS[task].config["generation_kwargs"]
    blocks = "one block" if g["block_length"] >= g["max_gen_toks"] else f"blocks of {g['block_length']}"
    return f"{g['max_gen_toks']} tokens, {g['steps']} steps, {blocks}"


def portable_command(recipe: dict) -> str:
    """The recorded training command with its output directory written as DIR and without snapshot saving
    (neither changes the weights)."""
    return re.sub(r" --checkpoint-every \d+", "", re.sub(r"--out \S+", "--out DIR", recipe["command"]))


def kept_history(card_path: Path) -> str:
    """The hand-written history section of an existing card (from its heading to the end), or ""."""
    if not card_path.is_file():
        return ""
    text = card_path.read_text()
    at = text.find("\n" + HISTORY)
    return text[at + 1:].rstrip() + "\n" if at >= 0 else ""


def write_card(model_dir: str, scores: dict) -> str:
    """MODEL_CARD.md from the training recipe (recipe.json) and the measured scores.

    A hand-written `## History` section at the end of an existing card (experiments, earlier runs) is kept."""
    d = Path(model_dir)
    history = kept_history(d / CARD)
    recipe = json.loads((d / "recipe.json").read_text())
    config = json.loads((d / "config.json").read_text())
    from . import corpus
    mix = recipe.get("corpus") or {"mix": corpus.MIX, "pretrain_share": corpus.PRETRAIN_SHARE}
    rows = "\n".join(f"| {t} | {s['category']} | {s['metric']} | {100 * s['value']:.1f} ± {100 * s['stderr']:.1f} |"
                     for t, s in scores["tasks"].items())
    cats = "\n".join(f"| {c} | {100 * s['value']:.1f} ± {100 * s['stderr']:.1f} |" for c, s in scores["categories"].items())
    text = f"""# The embedded tiny dLLM (`dllmq.load_model("tiny")`)

A LLaDA-architecture masked diffusion language model (native `LLaDAModelLM`, `model_type: llada`), trained
from scratch by `dllmq.tiny.train` on the procedural corpus of `dllmq.tiny` (no downloads). It exists so
every notebook of the kit has a real dLLM to decode, score and quantize on a CPU.

## Model
- {recipe['params'] / 1e6:.2f} M parameters: d_model {config['d_model']}, {config['n_layers']} blocks,
  {config['n_heads']} heads, SwiGLU hidden {config['mlp_hidden_size']}, RoPE, RMSNorm, untied head;
  byte-level BPE tokenizer of {config['vocab_size']} tokens (digits split), `<|mask|>` id {config['mask_token_id']},
  `<|eos|>` id {config['eos_token_id']}.
- Weights stored in fp32 safetensors; assets total {_size_mb(d):.1f} MB.

## Training recipe (reproducible from one command)
- Command: `{portable_command(recipe)}` (seed {recipe['seed']}); also `dllmq train-tiny ...`.
- Objective: LLaDA masked diffusion (`dllmq/tiny/objective.py`): per row t ~ U(0,1) (stratified over the
  batch), p = (1 - 1e-3) t + 1e-3, each maskable token masked with probability p, cross-entropy on masked
  tokens weighted by 1/p; SFT rows never mask the prompt and are normalised by the answer length
  (answer + EOS padding); {100 * mix['pretrain_share']:.0f}% pretraining rows (2-3 solved items) mask
  everything{f"; {100 * mix['drill_share']:.0f}% drill rows (bare worked equations)" if mix.get('drill_share') else ''}.
  SFT task weights: {', '.join(f"{k} {v:g}" for k, v in mix['mix'].items())}.
- AdamW (betas 0.9/0.98, weight decay 0.01), peak lr {recipe['lr']}, 3% warm-up then cosine to 10%,
  grad-norm clip 1.0, ~{recipe['token_budget']} tokens per batch.
- Run: {recipe['steps']} steps in {recipe['wall_time_s'] / 60:.1f} min wall on {recipe['device']}
  ({recipe['threads']} thread(s), torch {recipe['torch']}). The learning-rate schedule followed
  {'the step count' if recipe['steps'] >= recipe['max_steps'] else 'the wall-time budget of ' + str(recipe['minutes']) + ' min'}.
- Final training loss (EMA): {recipe['final_loss_ema']:.3f}.

## TinyBench (full precision, fp32, CPU)
Held-out test sets shipped in `dllmq/eval/data/` (no test prompt occurs in the training corpus:
`tests/test_tiny_corpus.py`). Stderr is the standard error of the mean over items.

| category | score (%) |
|---|---|
{cats}

| task | category | metric | score (%) |
|---|---|---|---|
{rows}

Decoding: general = exact one-token likelihood of each choice; math = {_decoding("tinybench_math")},
low-confidence remasking; code = {_decoding("tinybench_code")}. Whole TinyBench (`tinybench`, no few-shot
task) took {scores['eval_seconds']:.0f} s on a CPU shared with other jobs ({platform.machine()}, {scores['threads']} threads).
Measure again with `python -m dllmq.tiny.card --model dllmq/tiny/assets`.

{_reproductions_section(scores)}
## Limits
A toy: it knows only the procedural world of `dllmq/tiny/lexicon.py` and the templates of
`general.py`, `arithmetic.py`, `coding.py`. HumanEval (`humaneval_offline`) is far beyond it (0%).
""" + ("\n" + history if history else "")
    (d / CARD).write_text(text)
    return text


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dllmq.tiny.card", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="directory with config.json, weights and recipe.json")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compare", action="append", default=[], metavar="RUN_DIR",
                        help="another training run of the recipe to score for the reproducibility table")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    scores_path = Path(args.model) / SCORES
    scores = measure(args.model, tasks=("tinybench",), limit=args.limit)
    fewshot = measure(args.model, tasks=("tinybench_math_fewshot",), limit=args.limit)
    scores["tasks"].update(fewshot["tasks"])
    fresh = [reproduction(run, scores, args.limit) for run in args.compare]
    previous = json.loads(scores_path.read_text()).get("reproductions", []) if scores_path.is_file() else []
    scores["reproductions"] = merge_reproductions(fresh, previous)
    scores_path.write_text(json.dumps(scores, indent=2) + "\n")
    write_card(args.model, scores)
    print(json.dumps(scores, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
