"""Capture a small raw sample of chosen Linear inputs (for 3D surface plots and token-level looks).

Unlike the streaming statistics this keeps the tensors, so it is bounded explicitly: at most
`max_samples` rows of the data, each cut to `max_tokens` positions (from the batch's first real token,
so left padding does not crowd out the text).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from ..models.layout import ROLES, get_layout
from .collect import forward_kwargs, iter_batches


@dataclass
class Capture:
    """Raw input of one Linear: x (n, T, C) float32 on the CPU, with its token ids and padding mask."""

    x: torch.Tensor
    input_ids: torch.Tensor  # (n, T)
    attention_mask: Optional[torch.Tensor]  # (n, T) or None (no padding)
    layer: int
    role: str
    model_name: str = ""

    def tokens(self, sample: int = 0) -> torch.Tensor:
        """(T_real, C) vectors of one sample without its padding."""
        x = self.x[sample]
        if self.attention_mask is None:
            return x
        return x[self.attention_mask[sample].bool()]

    @property
    def label(self) -> str:
        name = self.model_name.rstrip("/").split("/")[-1] if self.model_name else "model"
        return f"{name} L{self.layer} {self.role}"


@torch.no_grad()
def capture_inputs(model, data, sites: Sequence[tuple], *, tok=None, max_samples: int = 1,
                   max_tokens: Optional[int] = 256, batch_size: int = 8, max_length: Optional[int] = None,
                   model_name: str = "") -> dict:
    """{(layer, role): Capture} of the raw inputs of the chosen (layer, role) Linears, one forward pass
    per batch until `max_samples` rows are captured. Hooks are removed even when the forward raises."""
    layout = get_layout(model)
    n = len(layout.blocks)
    sites = [(int(layer) + n if int(layer) < 0 else int(layer), role) for layer, role in sites]
    for layer, role in sites:
        if role not in ROLES:
            raise ValueError(f"role={role!r} invalid; allowed: {ROLES}")
        if not 0 <= layer < n:
            raise ValueError(f"layer={layer} out of range; the model has {n} blocks")
    if not isinstance(max_samples, int) or max_samples < 1:
        raise ValueError(f"max_samples={max_samples!r} must be a positive integer")
    store = {s: [] for s in sites}
    ctx = {}

    def make_hook(site):
        def hook(module, args):
            x = args[0].detach()[:ctx["take"], ctx["start"]:ctx["start"] + ctx["T"]]
            store[site].append(x.float().cpu())
        return hook

    handles = []
    device = next(model.parameters()).device
    ids_all, masks, got = [], [], 0
    try:
        for site in sites:
            handles.append(layout.blocks[site[0]].get(site[1]).register_forward_pre_hook(make_hook(site)))
        for ids, mask in iter_batches(data, tok, batch_size, max_length):
            take = min(ids.shape[0], max_samples - got)
            ids, mask = ids[:take], None if mask is None else mask[:take]
            # keep max_tokens positions from the first real token (left padding is skipped)
            start = 0 if mask is None else int(mask.bool().float().argmax(-1).min())
            T = ids.shape[1] - start if max_tokens is None else min(ids.shape[1] - start, max_tokens)
            ctx.update(take=take, T=T, start=start)
            model(ids.to(device), attention_mask=None if mask is None else mask.to(device), **forward_kwargs(model))
            ids_all.append(ids[:, start:start + T].cpu())
            masks.append(None if mask is None else mask[:, start:start + T].cpu())
            got += take
            if got >= max_samples:
                break
    finally:
        for h in handles:
            h.remove()
    name = model_name or getattr(model.config, "_name_or_path", "") or ""
    out = {}
    for site in sites:
        x = _cat_padded([t for t in store[site]])
        ids = _cat_padded([t[..., None] for t in ids_all])[..., 0].long()
        mask = None
        if any(m is not None for m in masks) or len({t.shape[1] for t in ids_all}) > 1:
            mask = _cat_padded([(torch.ones_like(i) if m is None else m)[..., None] for i, m in zip(ids_all, masks)])[..., 0]
        out[site] = Capture(x=x, input_ids=ids, attention_mask=mask, layer=site[0], role=site[1], model_name=name)
    return out


def _cat_padded(parts: list) -> torch.Tensor:
    """Concatenate (n_i, T_i, C) tensors along dim 0, right-padding T with zeros."""
    T = max(p.shape[1] for p in parts)
    return torch.cat([torch.nn.functional.pad(p, (0, 0, 0, T - p.shape[1])) for p in parts])


def capture_input(model, data, layer: int, role: str, **kw) -> Capture:
    """The raw input of one (layer, role) Linear; see `capture_inputs`."""
    return next(iter(capture_inputs(model, data, [(layer, role)], **kw).values()))
