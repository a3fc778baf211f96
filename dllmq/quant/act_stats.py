"""Per-channel max|X| of every block linear's input over calibration data (SmoothQuant's `act_scales`).

One full-precision pass over the calibration batches with a forward pre-hook on each block linear;
a running max over all tokens (padding excluded when a mask is given). q/k/v (and gate/up) read the same
tensor, so their statistics are identical. The result is keyed by (block index, role).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from ..models.layout import ROLES


def _token_rows(x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """(B, T, C) -> (tokens, C), dropping padded positions when a (B, T) mask is known."""
    if mask is not None and x.dim() == 3 and mask.shape == x.shape[:2]:
        return x[mask.to(x.device).bool()]
    return x.reshape(-1, x.shape[-1])


def iter_calibration(calib, batch_size: int = 8) -> list:
    """[(ids (B, T), mask or None), ...] from a LongTensor (n, T) (what `get_calibration` returns) or an
    iterable of such tensors / (ids, mask) pairs."""
    if isinstance(calib, torch.Tensor):
        ids = calib if calib.dim() == 2 else calib[None]
        return [(ids[i:i + batch_size], None) for i in range(0, ids.shape[0], batch_size)]
    out = []
    for item in calib:
        if isinstance(item, torch.Tensor):
            out.append((item if item.dim() == 2 else item[None], None))
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            out.append((item[0], item[1]))
        else:
            raise TypeError(f"calib items must be LongTensors or (ids, mask) pairs, got {type(item).__name__}")
    if not out:
        raise ValueError("calib is empty")
    return out


@torch.no_grad()
def collect_input_absmax(model: nn.Module, layout, calib, roles: tuple = ROLES, batch_size: int = 8,
                         progress: bool = True) -> dict:
    """{(block, role): max over tokens of |x_j|, shape (in_features,), float32} for the requested roles.

    `calib`: LongTensor (n, T) of token ids, or an iterable of batches (see `iter_calibration`)."""
    batches = iter_calibration(calib, batch_size)
    stats: dict = {}
    current_mask: list = [None]
    handles = []

    def hook_for(key):
        def hook(_module, args):
            x = args[0].detach()
            m = _token_rows(x, current_mask[0]).abs().amax(dim=0).float()
            stats[key] = m if key not in stats else torch.maximum(stats[key], m)
        return hook

    for b in layout.blocks:
        for role in roles:
            handles.append(b.get(role).register_forward_pre_hook(hook_for((b.index, role))))
    device = next(model.parameters()).device
    try:
        for ids, mask in tqdm(batches, desc="max|X| statistics", **({} if progress else {"disable": True})):
            current_mask[0] = mask
            model(ids.to(device), attention_mask=None if mask is None else mask.to(device))
    finally:
        for h in handles:
            h.remove()
    if not stats:
        raise ValueError("no calibration batch reached the model (empty calibration set?)")
    return {k: v.cpu() for k, v in stats.items()}
