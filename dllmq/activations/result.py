"""ActivationStats: the streaming statistics of every chosen (layer, role) input of a model."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pandas as pd

from .classify import OutlierThresholds, classify_site
from .stats import SiteStats


@dataclass
class ActivationStats:
    """Per-site statistics. Roles that read the same tensor (q/k/v, gate/up) share one `SiteStats`.

    `stats[layer, role]` returns the site; `stats.frame()` one summary row per site;
    `stats.outliers()` the normal/massive classification table."""

    sites: dict  # (layer, primary role) -> SiteStats
    aliases: dict  # (layer, any requested role) -> (layer, primary role)
    n_layers: int
    family: str
    model_name: str = ""
    group: str = "all"
    meta: dict = field(default_factory=dict)

    def __getitem__(self, key) -> SiteStats:
        if key not in self.aliases:
            raise KeyError(f"(layer, role)={key!r} was not collected; collected: {sorted(self.aliases)}")
        return self.sites[self.aliases[key]]

    def __contains__(self, key) -> bool:
        return key in self.aliases

    @property
    def layers(self) -> list:
        return sorted({layer for layer, _ in self.sites})

    @property
    def roles(self) -> list:
        """Requested roles, in data-flow order."""
        from ..models.layout import ROLES
        return [r for r in ROLES if any(role == r for _, role in self.aliases)]

    @property
    def n_tokens(self) -> int:
        return max((s.n_tokens for s in self.sites.values()), default=0)

    def frame(self) -> pd.DataFrame:
        """One summary row per site: magnitudes, kurtosis, quantization error."""
        rows = []
        for (layer, _), s in sorted(self.sites.items(), key=lambda kv: (kv[0][0], _role_order(kv[0][1]))):
            if s.n_tokens == 0:
                continue
            top = s.top_token_rows()[0]
            rows.append({
                "layer": layer, "role": s.role, "roles": ",".join(s.roles), "n_tokens": s.n_tokens,
                "channels": s.channels, "absmax": s.absmax, "absmax_channel": int(s.ch_absmax.argmax()),
                "median_abs": s.median_abs, "p99_abs": s.quantile_abs(0.99),
                "absmax_over_median": s.absmax / max(s.median_abs, 1e-30),
                "max_channel_mean": float(s.ch_absmean.max()), "kurtosis": s.kurtosis,
                "q8_rel_mse": s.quant_rel_mse(8), "q4_rel_mse": s.quant_rel_mse(4),
                "q4_bulk_rel_mse_top_token": top["q4_bulk_rel_mse"],
                "top_token_sample": top["sample"],
                "top_token_position": top["position"], "top_token_id": top["token_id"],
            })
        return pd.DataFrame(rows)

    def outliers(self, thresholds: Optional[OutlierThresholds] = None, tok=None, **overrides) -> pd.DataFrame:
        """Per-layer, per-role outlier table: counts, top channels/tokens, magnitudes and the kind
        ("massive", "normal", "massive+normal" or "none"). Threshold overrides: e.g. massive_abs=20."""
        th = (thresholds or OutlierThresholds()).with_(**overrides)
        rows = [classify_site(s, th, tok=tok)
                for (_, _), s in sorted(self.sites.items(), key=lambda kv: (kv[0][0], _role_order(kv[0][1])))
                if s.n_tokens > 0]
        return pd.DataFrame(rows)

    def nbytes(self) -> int:
        """Total tensor footprint of the statistics (independent of the number of tokens seen)."""
        return sum(s.nbytes() for s in self.sites.values())

    def cpu(self) -> "ActivationStats":
        for s in self.sites.values():
            s.to("cpu")
        return self

    def __repr__(self) -> str:
        return (f"ActivationStats({self.model_name or self.family}, group={self.group!r}, layers={len(self.layers)}/"
                f"{self.n_layers}, roles={self.roles}, tokens={self.n_tokens})")


def _role_order(role: str) -> int:
    from ..models.layout import ROLES
    return ROLES.index(role)
