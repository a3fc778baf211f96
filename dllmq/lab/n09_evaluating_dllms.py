"""Notebook 09 (evaluating dLLMs): the two ways a dLLM is scored, one item at a time, the steps-vs-quality
curve, and how noisy the Monte-Carlo likelihood is.

  likelihood   multiple choice: the MC masked-diffusion ELBO of each choice; the highest wins
  generation   math / code: denoise an answer, then grade it (final number; hidden tests in a sandbox)

These are what lm-eval does in bulk through `DllmqLM`; here every number is visible. A dLLM has no exact
log p(answer | prompt): multiple-choice tasks use the ELBO estimated with n random masks (LLaDA: 128;
MMLU: 1, exact for one-token answers). `mc_spread` re-estimates the same pairs with several seeds and
reports, per n, the spread across seeds (it should fall like 1/sqrt(n)) and the error against the exact
ELBO (every mask enumerated, for short answers); `decision_flips` how often a multiple-choice decision
flips between seeds. The plots are in `dllmq.viz.results`.
"""
from __future__ import annotations

import json
import time
from typing import Optional, Sequence

import numpy as np
import pandas as pd

SPLITS = ("general", "math", "math_fewshot", "code")


def tinybench_rows(split: str, n: Optional[int] = None) -> list:
    """The first n rows of a TinyBench split (dicts: prompt, answer, choices/label, target or tests)."""
    from ..eval.tasks import DATA_DIR

    if split not in SPLITS:
        raise ValueError(f"split={split!r} is unknown; allowed: {SPLITS}")
    with open(DATA_DIR / f"{split}.jsonl", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return rows[:n] if n else rows


def score_choices(model, tok, item: dict, mc_samples: int = 128, seed: int = 0) -> pd.DataFrame:
    """Likelihood scoring of one multiple-choice item: ELBO (and its MC standard error) per choice."""
    from ..likelihood import encode_pair, loglikelihood

    pairs = [(item["prompt"], " " + choice) for choice in item["choices"]]
    scores = loglikelihood(model, tok, pairs, mc_samples=mc_samples, batch_size=min(32, mc_samples), seed=seed,
                           return_stderr=True)
    frame = pd.DataFrame({"choice": item["choices"],
                          "answer_tokens": [len(encode_pair(tok, c, y)[1]) for c, y in pairs],
                          "loglik": [v for v, _ in scores], "stderr": [s for _, s in scores]})
    frame["chosen"] = frame["loglik"] == frame["loglik"].max()
    frame["correct"] = [i == item["label"] for i in range(len(frame))]
    return frame


def generate_and_grade(model, tok, items: Sequence[dict], kind: str = "math", **sampler) -> pd.DataFrame:
    """Generation scoring: denoise answers for `items` (math or code rows) and grade each one."""
    from ..decoding import generate
    from ..eval.grading import check_code, math_correct

    if kind not in ("math", "code"):
        raise ValueError(f"kind={kind!r} is unknown; allowed: 'math', 'code'")
    gen = generate(model, tok, [item["prompt"] for item in items], **sampler)
    rows = []
    for item, text in zip(items, gen.text):
        stops = ("\n\n", "Question:") if kind == "math" else ("\ndef", "\nclass", "\nif", "\nprint", "\n#", "\n\n")
        for stop in stops:
            text = text.split(stop)[0]
        if kind == "math":
            ok = math_correct(text, item["target"])
        else:
            ok = check_code(item["prompt"], text, item["tests"], item.get("entry_point")).passed
        rows.append({"prompt": item["prompt"][-60:], "generated": text, "correct": bool(ok)})
    return pd.DataFrame(rows)


def steps_curve(model, tok, items: Sequence[dict], steps_list: Sequence[int], gen_length: int = 32,
                block_length: int = 8, kind: str = "math") -> pd.DataFrame:
    """Accuracy and wall time of generation at several step counts for a fixed gen length."""
    rows = []
    for steps in steps_list:
        start = time.perf_counter()
        graded = generate_and_grade(model, tok, items, kind, steps=steps, gen_length=gen_length,
                                    block_length=block_length)
        rows.append({"steps": steps, "tokens_per_step": gen_length / steps, "accuracy": graded["correct"].mean(),
                     "seconds": time.perf_counter() - start})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- Monte-Carlo noise

SAMPLE_COUNTS = (1, 2, 4, 8, 16, 32, 64, 128)


def mc_spread(model, tok, pairs: Sequence[tuple], sample_counts: Sequence[int] = SAMPLE_COUNTS,
              seeds: Sequence[int] = tuple(range(8)), exact: bool = True, max_exact_tokens: int = 8) -> pd.DataFrame:
    """One row per (pair, n): mean and std over seeds of the MC estimate, its RMSE vs the exact ELBO.

    pairs: (context, continuation) strings; continuations of 1 token are exact for every n (std 0)."""
    from ..likelihood import encode_pair, exact_elbo, loglikelihood

    rows = []
    for i, (context, continuation) in enumerate(pairs):
        ctx, cont = encode_pair(tok, context, continuation)
        truth = exact_elbo(model, ctx, cont) if exact and len(cont) <= max_exact_tokens else float("nan")
        for n in sample_counts:
            estimates = np.array([loglikelihood(model, tok, [(context, continuation)], mc_samples=n,
                                                batch_size=min(n, 32), seed=s)[0] for s in seeds])
            rows.append({"pair": i, "tokens": len(cont), "n_samples": n, "mean": estimates.mean(),
                         "std": estimates.std(ddof=1) if len(seeds) > 1 else float("nan"), "exact": truth,
                         "rmse": float(np.sqrt(np.mean((estimates - truth) ** 2)))})
    return pd.DataFrame(rows)


def decision_flips(model, tok, items: Sequence[dict], sample_counts: Sequence[int] = (1, 4, 16, 64),
                   seeds: Sequence[int] = tuple(range(4))) -> pd.DataFrame:
    """Per n: the share of (item, seed) whose chosen answer differs from the item's majority choice at the
    largest n, and the accuracy. items: dicts with prompt, choices, label (TinyBench general rows)."""
    from ..likelihood import loglikelihood

    choices_at = {}
    for n in sample_counts:
        for s in seeds:
            for j, item in enumerate(items):
                scores = loglikelihood(model, tok, [(item["prompt"], " " + c) for c in item["choices"]],
                                       mc_samples=n, batch_size=min(n, 32), seed=s)
                choices_at[(n, s, j)] = int(np.argmax(scores))
    top = max(sample_counts)
    reference = {j: np.bincount([choices_at[(top, s, j)] for s in seeds]).argmax() for j in range(len(items))}
    rows = []
    for n in sample_counts:
        picks = [(choices_at[(n, s, j)], j) for s in seeds for j in range(len(items))]
        rows.append({"n_samples": n, "flip_rate": float(np.mean([c != reference[j] for c, j in picks])),
                     "accuracy": float(np.mean([c == items[j]["label"] for c, j in picks]))})
    return pd.DataFrame(rows)
