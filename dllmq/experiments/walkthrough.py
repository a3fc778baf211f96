"""The two ways a dLLM is scored, one item at a time (notebook 09), and the steps-vs-quality curve.

  likelihood   multiple choice: the MC masked-diffusion ELBO of each choice; the highest wins
  generation   math / code: denoise an answer, then grade it (final number; hidden tests in a sandbox)

These are what lm-eval does in bulk through `DllmqLM`; here every number is visible.
"""
from __future__ import annotations

import json
import time
from typing import Optional, Sequence

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
