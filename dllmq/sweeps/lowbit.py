"""Real low-bit storage vs fake quantization: measured weight memory, forward latency and fidelity.

The paper simulates every method (fake quantization: quantize, dequantize, keep float weights) and
measures no memory or speed (its Sec. 5 limitation). This study stores the same models for real:

  backend     weights held as                                      recipe of the cell
  fp32/bf16   float                                                "fp"
  fake        float values on the quantization grid (paper)        a weight-only recipe (<= 4 bits)
  packed      int4 codes, two per byte + scales, dequantized per forward   same recipe
  packed-cached  as packed, dequantized once and kept (speed of fake, memory of fake after first use)
  nf4 / int8  bitsandbytes NF4 (block 64) / LLM.int8, data-free    "fp"

and reports, per backend: weight_mib (bytes of the block linears, measured from the tensors),
forward_ms (median wall time of one forward on a fixed batch), and KL / top-1 agreement against the
FP32 model at masked positions (what the storage costs in fidelity).
"""
from __future__ import annotations

import copy
import statistics
import time

import torch

BACKENDS = ("fp32", "bf16", "fake", "packed", "packed-cached", "nf4", "int8")
FP_BACKENDS = ("fp32", "bf16", "nf4", "int8")  # built from the FP model (recipe "fp")
QUANT_BACKENDS = ("fake", "packed", "packed-cached")  # built from the fake-quantized model


def build_backend(fp_model, q_model, backend: str):
    """The model stored in `backend` (a copy; the inputs are not modified)."""
    from ..quant.backends import bnb_quantize, pack_model

    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is unknown; allowed: {BACKENDS}")
    if backend in QUANT_BACKENDS and q_model is None:
        raise ValueError(f"backend={backend!r} needs a weight-only quantized model (cell recipe, not 'fp')")
    if backend == "fp32":
        return copy.deepcopy(fp_model).float()
    if backend == "bf16":
        return copy.deepcopy(fp_model).to(torch.bfloat16)
    if backend in ("nf4", "int8"):
        return bnb_quantize(copy.deepcopy(fp_model).float(), backend)
    model = copy.deepcopy(q_model)
    if backend != "fake":
        packed = pack_model(model, cache=backend == "packed-cached")
        if packed == 0:
            raise ValueError("no layer could be packed: the recipe must be weight-only with <= 4 bits")
    return model


@torch.no_grad()
def forward_ms(model, ids: torch.Tensor, repeats: int = 5) -> float:
    """Median wall time (ms) of one forward on `ids` after one warm-up run."""
    device = next(model.parameters()).device
    ids = ids.to(device)
    model(ids)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        model(ids)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def memory_rows(fp_model, q_model, tok, model_name: str, backend: str, n: int = 4, seq_len: int = 64,
                repeats: int = 5) -> list:
    """Store rows (task "memory") for one backend: weight_mib, forward_ms, kl, top1_agree."""
    from ..quant.backends import weight_memory
    from .fidelity import fidelity, heldout_windows

    model = build_backend(fp_model, q_model, backend)
    ids = heldout_windows(tok, model_name, n=n, seq_len=seq_len)
    rows = [{"task": "memory", "category": "memory", "metric": "weight_mib", "value": weight_memory(model) / 2**20},
            {"task": "memory", "category": "memory", "metric": "forward_ms", "value": forward_ms(model, ids, repeats),
             "n": repeats}]
    mask_id = tok.mask_token_id if tok.mask_token_id is not None else fp_model.config.mask_token_id
    stats = fidelity(fp_model, model, ids, mask_id)  # logits compared in float32
    for name in ("kl", "top1_agree"):
        value, stderr, count = stats[name]
        rows.append({"task": "memory", "category": "memory", "metric": name, "value": value, "stderr": stderr,
                     "n": count})
    return rows

