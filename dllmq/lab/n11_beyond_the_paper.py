"""Notebook 11 (beyond the paper): a readable view of the studies' store records (the studies themselves
are sweep presets, `dllmq.sweeps.studies`; their figures `dllmq.viz.results.plot_study`)."""
from __future__ import annotations

import pandas as pd

from ..paper.compare import calibration_kind, recipe_label


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """A readable view of store records: method/setting label, calibration, variant, task, metric, value."""
    out = pd.DataFrame({"recipe": frame["recipe"].map(recipe_label),
                        "calibration": frame["recipe"].map(calibration_kind), "variant": frame["variant"],
                        "task": frame["task"], "metric": frame["metric"], "value": frame["value"],
                        "stderr": frame["stderr"]})
    return out.sort_values(["task", "metric", "recipe", "calibration", "variant"]).reset_index(drop=True)


# ----------------------------------------------------------------------------------------------
# Real low-bit kernels (section 4): the kernel backend against the fake-quant reference.

LOWBIT_RESULTS = "benchmarks/results/lowbit_cpu.json"  # written by `python -m benchmarks.bench_lowbit --block`


def kernel_vs_fake(model, recipes=("rtn:w8a8", "rtn:w4a16g128"), n_tokens: int = 64) -> pd.DataFrame:
    """Per recipe: layers run by a real kernel, relative logit difference kernel vs fake, weight MiB of each."""
    import torch

    from ..quant import quantize
    from ..quant.backends import weight_memory
    from ..quant.kernels import Int4WeightLinear, Int8Linear

    ids = torch.randint(4, 100, (2, n_tokens), generator=torch.Generator().manual_seed(0))
    rows = []
    for recipe in recipes:
        fake, _ = quantize(model, recipe)
        kernel, _ = quantize(model, recipe, backend="kernel")
        with torch.no_grad():
            a, b = kernel(input_ids=ids).logits, fake(input_ids=ids).logits
        kinds = sorted({type(m).__name__ for m in kernel.modules() if isinstance(m, (Int8Linear, Int4WeightLinear))})
        rows.append({"recipe": recipe, "kernel": ", ".join(kinds),
                     "rel_logit_diff": ((a - b).norm() / b.norm()).item(),
                     "fake_weight_mib": weight_memory(fake) / 2**20, "kernel_weight_mib": weight_memory(kernel) / 2**20})
    return pd.DataFrame(rows)


def lowbit_benchmark(path=None) -> pd.DataFrame:
    """The committed benchmark numbers (tiny model and the LLaDA-8B-shaped block), one row per scale x backend;
    an empty frame when the file is not there (a pip install without the repository's benchmarks/)."""
    import json
    from pathlib import Path

    path = Path(path) if path is not None else Path(__file__).resolve().parents[2] / LOWBIT_RESULTS
    if not path.is_file():
        return pd.DataFrame(columns=["scale", "backend", "weight_mib", "bytes_vs_bf16", "peak_rss_mib",
                                     "time_vs_fp32", "time_vs_bf16"])
    rows = []
    for scale, result in json.loads(path.read_text()).items():
        for backend, r in result["rows"].items():
            rows.append({"scale": scale, "backend": backend,
                         "weight_mib": None if r.get("weight_bytes") is None else r["weight_bytes"] / 2**20,
                         "bytes_vs_bf16": r.get("bytes_vs_bf16"),
                         "peak_rss_mib": None if r.get("peak_rss") is None else r["peak_rss"] / 2**20,
                         "time_vs_fp32": r.get("time_vs_fp32"), "time_vs_bf16": r.get("time_vs_bf16")})
    return pd.DataFrame(rows)
