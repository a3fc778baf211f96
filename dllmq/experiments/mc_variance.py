"""How noisy is the Monte-Carlo likelihood? Measured, for notebook 09.

A dLLM has no exact log p(answer | prompt); multiple-choice tasks use the masked-diffusion ELBO
estimated with n random masks (LLaDA: 128; MMLU: 1, exact for one-token answers). This module
re-estimates the same pairs with several seeds and reports, per n: the spread of the estimate across
seeds (it should fall like 1/sqrt(n)), its error against the exact ELBO (enumerating every mask, for
short answers), and how often a multiple-choice decision flips between seeds.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

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


def plot_mc_spread(frame: pd.DataFrame, ax=None):
    """Std of the estimate across seeds vs n (log-log), with the 1/sqrt(n) slope for reference."""
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.5, 3.6))
    multi = frame[frame["tokens"] > 1]
    for pair, part in multi.groupby("pair"):
        ax.plot(part["n_samples"], part["std"], marker="o", alpha=0.8, label=f"pair {pair} ({part['tokens'].iloc[0]} tok)")
    if not multi.empty:
        n = np.array(sorted(set(multi["n_samples"])))
        start = multi[multi["n_samples"] == n[0]]["std"].mean()
        ax.plot(n, start / np.sqrt(n / n[0]), "k--", lw=1, label=r"$\propto 1/\sqrt{n}$")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("Monte-Carlo samples n")
    ax.set_ylabel("std of log-likelihood estimate (nats)")
    ax.set_title("MC likelihood: noise vs samples")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
