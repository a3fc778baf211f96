"""Normal vs massive activation outliers, with documented, adjustable thresholds.

The taxonomy follows DuQuant (Lin et al. 2024, arXiv 2406.01721) as used by the dLLM study
(arXiv 2508.14896, Sec. 5):

* **normal outliers** - channels that are large on (most) every token (SmoothQuant's channel outliers).
  Channel c is one when
      mean_t |x_tc| >= normal_ratio * median_c' (mean_t |x_tc'|)           (much larger than a typical channel)
  and on at least `normal_token_frac` of the tokens
      |x_tc| >= normal_token_ratio * mean_c' |x_tc'|                        (large on that token, not on a few)
* **massive outliers** - a few tokens with extreme values (Sun et al. 2024, "Massive activations in large
  language models", arXiv 2402.17762): an entry is massive when
      |x| >= massive_abs (100)   and   |x| >= massive_ratio (1000) * median |x| of the site.

Defaults follow those papers; lower them to look at a small model whose activations never reach 100.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch

from .histograms import hist_count_above, magnitude_hist
from .stats import RATIO_LEVELS, SiteStats


@dataclass(frozen=True)
class OutlierThresholds:
    """Thresholds of the outlier classification (see the module docstring for the definitions)."""

    massive_abs: float = 100.0  # massive: |x| at least this ...
    massive_ratio: float = 1000.0  # ... and at least this many times the site's median |x|
    normal_ratio: float = 8.0  # normal: channel mean|x| >= this x the median channel's mean|x| ...
    normal_token_ratio: float = 4.0  # ... and |x_tc| >= this x the token's mean |x| (one of RATIO_LEVELS) ...
    normal_token_frac: float = 0.5  # ... on at least this fraction of tokens

    def __post_init__(self):
        if self.normal_token_ratio not in RATIO_LEVELS:
            raise ValueError(f"normal_token_ratio={self.normal_token_ratio!r} must be one of the recorded levels "
                             f"{RATIO_LEVELS}")
        if not 0 < self.normal_token_frac <= 1:
            raise ValueError(f"normal_token_frac={self.normal_token_frac!r} must be in (0, 1]")
        for name in ("massive_abs", "massive_ratio", "normal_ratio"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}={getattr(self, name)!r} must be >= 0")

    def with_(self, **overrides) -> "OutlierThresholds":
        unknown = set(overrides) - set(asdict(self))
        if unknown:
            raise ValueError(f"unknown threshold(s) {sorted(unknown)}; allowed: {sorted(asdict(self))}")
        return replace(self, **overrides)


def normal_channels(site: SiteStats, th: OutlierThresholds) -> tuple:
    """(channels, ratios) of the normal-outlier channels, sorted by mean|x| ratio (largest first)."""
    mean = site.ch_absmean.cpu()
    ratio = mean / mean.median().clamp(min=1e-30)  # (C,)
    frac = site.large_fraction(th.normal_token_ratio)
    hit = (ratio >= th.normal_ratio) & (frac >= th.normal_token_frac)
    ch = hit.nonzero().squeeze(-1)
    order = ratio[ch].argsort(descending=True)
    return ch[order].tolist(), ratio[ch][order].tolist()


def massive_threshold(site: SiteStats, th: OutlierThresholds) -> float:
    return max(th.massive_abs, th.massive_ratio * site.median_abs)


def massive_entries(site: SiteStats, th: OutlierThresholds) -> list:
    """Recorded top entries that pass the massive test (complete unless all top-k entries pass)."""
    thr = massive_threshold(site, th)
    return [e for e in site.top_entry_rows() if e["score"] >= thr]


def massive_token_count(site: SiteStats, th: OutlierThresholds) -> tuple:
    """(count, exact): tokens whose absmax passes the massive test; exact while fewer than top-k tokens do,
    else estimated from the token-absmax histogram."""
    thr = massive_threshold(site, th)
    rows = site.top_token_rows()
    n = sum(r["score"] >= thr for r in rows)
    if n < site.topk:
        return n, True
    return int(round(hist_count_above(magnitude_hist(site.tok_absmax_hist.cpu()), thr))), False


def classify_site(site: SiteStats, th: OutlierThresholds, tok=None, max_list: int = 5) -> dict:
    """One row of the outlier table for a site."""
    ch, ratios = normal_channels(site, th)
    ents = massive_entries(site, th)
    n_tok, exact = massive_token_count(site, th)
    massive_ch = sorted({e["channel"] for e in ents})
    tokens = site.top_token_rows()
    massive_tok = [r for r in tokens if r["score"] >= massive_threshold(site, th)][:max_list]
    kind = "+".join(k for k, hit in (("massive", bool(ents)), ("normal", bool(ch))) if hit) or "none"
    return {
        "layer": site.layer, "role": site.role, "roles": ",".join(site.roles), "kind": kind,
        "n_tokens": site.n_tokens, "absmax": site.absmax, "median_abs": site.median_abs,
        "absmax_over_median": site.absmax / max(site.median_abs, 1e-30), "kurtosis": site.kurtosis,
        "n_normal_channels": len(ch), "normal_channels": ch[:max_list],
        "normal_max_ratio": ratios[0] if ratios else float("nan"),
        "n_massive_tokens": n_tok, "massive_count_exact": exact, "n_massive_entries": len(ents),
        "massive_channels": massive_ch[:max_list],
        "massive_max": max((abs(e["value"]) for e in ents), default=float("nan")),
        "massive_tokens": [_token_label(r, tok) for r in massive_tok],
        "top_token": _token_label(tokens[0], tok) if tokens else None,
        "q8_rel_mse": site.quant_rel_mse(8), "q4_rel_mse": site.quant_rel_mse(4),
        "q4_bulk_rel_mse_top_token": tokens[0]["q4_bulk_rel_mse"] if tokens else float("nan"),
    }


def _token_label(row: dict, tok=None) -> str:
    """"s<sample>:p<position>" plus the decoded token when a tokenizer is given."""
    label = f"s{row['sample']}:p{row['position']}"
    if tok is not None and row.get("token_id", -1) >= 0:
        label += f" {tok.decode([row['token_id']])!r}"
    return label


def plant_outliers(x: torch.Tensor, normal_channel: int, normal_value: float, massive_token: int,
                   massive_channel: int, massive_value: float) -> torch.Tensor:
    """A copy of x (T, C) with a normal outlier (one channel set to normal_value on every token) and a
    massive outlier (one entry set to massive_value); used by tests and the notebook's exercise."""
    y = x.clone()
    y[:, normal_channel] = normal_value
    y[massive_token, massive_channel] = massive_value
    return y
