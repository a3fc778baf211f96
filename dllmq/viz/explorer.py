"""An ipywidgets explorer of one layer's input (notebook 02): pick layer, role and mask ratio, see |x| redrawn.

The numbers are `dllmq.lab.n02_outliers.explore_view` (tested headlessly); `OutlierExplorer` only wires core
widgets (Dropdown, ToggleButtons, SelectionSlider, Output; ipywidgets 7.7 and 8.x) to it and draws.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional, Sequence

from ..activations.collect import iter_batches
from ..activations.views import MASK_RATIOS
from ..lab.n02_outliers import INPUT_ROLES, explore_view
from ..models.layout import get_layout
from .plots import plot_explorer_view


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
        view = explore_view(self.model, self.batch, layer, role, ratio, seed=self.seed, max_tokens=self.max_tokens)
        view["figure"] = plot_explorer_view(view["capture"], mask_id=view["mask_id"],
                                            title=f"L{layer} {role}, {ratio:.0%} masked")
        return view

    def update(self, *_) -> dict:
        from IPython.display import display
        self.last = self._cached(self.layer.value, self.role.value, self.ratio.value)
        with self.out:
            self.out.clear_output(wait=True)
            display(self.last["figure"])
        return self.last
