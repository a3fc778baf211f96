"""Notebook 02 (activation outliers): one layer's input with part of the tokens masked, summarised
(absmax, where it sits, the 4-bit error of the worst token's bulk) for the explorer widget."""
from __future__ import annotations

import torch

from ..activations.capture import capture_input
from ..activations.token_quant import per_token_quant_error
from ..activations.views import mask_tokens


INPUT_ROLES = ("q", "o", "gate", "down")  # one role per distinct input (q=k=v, gate=up)


def explore_view(model, batch: tuple, layer: int, role: str, ratio: float = 0.0, *, seed: int = 0,
                 max_tokens: int = 64, bits: int = 4) -> dict:
    """Capture the (layer, role) input of the first row of `batch` (ids, mask) with `ratio` of its
    tokens masked; return a summary (absmax, its token and channel, 4-bit error on the worst token)
    plus the capture itself ("capture", "mask_id") for `dllmq.viz.explorer` to draw."""
    ids, mask = batch
    ids, mask = ids[:1], None if mask is None else mask[:1]
    mask_id = getattr(model.config, "mask_token_id", None)
    if ratio > 0:
        if mask_id is None:
            raise ValueError(f"ratio={ratio}: this model has no mask token; use ratio=0")
        ids = mask_tokens(ids, ratio, int(mask_id), mask, torch.Generator().manual_seed(seed))
    data = {"input_ids": ids} if mask is None else {"input_ids": ids, "attention_mask": mask}
    cap = capture_input(model, data, layer, role, max_tokens=max_tokens)
    x = cap.tokens(0)  # (T, C)
    a = x.abs()
    t, c = divmod(int(a.argmax()), a.shape[1])
    err = per_token_quant_error(x, bits, bulk=True)
    summary = {"layer": layer, "role": role, "ratio": ratio, "absmax": float(a.max()), "token": t, "channel": c,
               "median_abs": float(a.median()), f"q{bits}_bulk_rel_mse_worst": float(err.max()),
               f"q{bits}_bulk_rel_mse_mean": float(err.mean()),
               "n_masked": 0 if mask_id is None else int((cap.input_ids[0] == mask_id).sum())}
    summary.update(capture=cap, mask_id=mask_id)
    return summary
