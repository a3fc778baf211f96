"""An ipywidgets explorer of one layer's input: pick layer, role and mask ratio, see |x| redrawn.

The logic is `explore_view` (a plain function, tested headlessly); `OutlierExplorer` only wires core
widgets (Dropdown, ToggleButtons, SelectionSlider, Output; ipywidgets 7.7 and 8.x) to it.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional, Sequence

import torch

from ..models.layout import get_layout
from .capture import capture_input
from .collect import iter_batches
from .token_quant import per_token_quant_error
from .views import MASK_RATIOS, mask_tokens

INPUT_ROLES = ("q", "o", "gate", "down")  # one role per distinct input (q=k=v, gate=up)


def explore_view(model, batch: tuple, layer: int, role: str, ratio: float = 0.0, *, seed: int = 0,
                 max_tokens: int = 64, bits: int = 4, draw: bool = True) -> dict:
    """Capture the (layer, role) input of the first row of `batch` (ids, mask) with `ratio` of its
    tokens masked; return a summary (absmax, its token and channel, 4-bit error on the worst token)
    and, with draw=True, the figure (3D |x| surface + per-token absmax)."""
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
    if draw:
        from ..viz.plots import plot_explorer_view
        summary["figure"] = plot_explorer_view(cap, mask_id=mask_id, title=f"L{layer} {role}, {ratio:.0%} masked")
    return summary


class OutlierExplorer:
    """Widgets for `explore_view`. `.widget` is the box to display; `.last` the last summary."""

    def __init__(self, model, data, tok=None, ratios: Sequence[float] = MASK_RATIOS, roles=INPUT_ROLES,
                 layer: Optional[int] = None, seed: int = 0, max_tokens: int = 64):
        import ipywidgets as w
        self.model = model
        self.batch = next(iter(iter_batches(data, tok, batch_size=1)))
        n = len(get_layout(model).blocks)
        if getattr(model.config, "mask_token_id", None) is None:
            ratios = (0.0,)
        self.seed, self.max_tokens = seed, max_tokens
        self.layer = w.Dropdown(options=list(range(n)), value=n - 1 if layer is None else layer, description="layer")
        self.role = w.ToggleButtons(options=list(roles), value=roles[-1], description="input of")
        self.ratio = w.SelectionSlider(options=[(f"{r:.0%}", float(r)) for r in ratios], value=float(ratios[0]),
                                       description="masked", continuous_update=False)
        self.out = w.Output()
        self.widget = w.VBox([w.HBox([self.layer, self.ratio]), self.role, self.out])
        self.last = None
        self._cached = lru_cache(maxsize=64)(self._compute)
        for control in (self.layer, self.role, self.ratio):
            control.observe(self.update, names="value")
        self.update()

    def _compute(self, layer: int, role: str, ratio: float) -> dict:
        return explore_view(self.model, self.batch, layer, role, ratio, seed=self.seed, max_tokens=self.max_tokens)

    def update(self, *_) -> dict:
        from IPython.display import display
        self.last = self._cached(self.layer.value, self.role.value, self.ratio.value)
        with self.out:
            self.out.clear_output(wait=True)
            display(self.last["figure"])
        return self.last
