"""Streaming statistics of one linear layer's input ("a site"), with memory that never grows with tokens.

A site sees batches of token vectors x_t in R^C (padding already removed). After any number of batches it
holds, all in fixed-size tensors:

  per channel c    absmax_c = max_t |x_tc|, mean_c = mean_t |x_tc|, and large_c[L] = #tokens with
                   |x_tc| >= L * mean_c' |x_tc'| for each level L in RATIO_LEVELS (is channel c an
                   outlier *on that token*?)
  per token        the top-k tokens by absmax (sample, position, token id, channel, mean |x|, quant error
                   over the token and over its bulk) and a log histogram of every token's absmax
  per entry        the top-k entries by |x| (sample, position, token id, channel, signed value) and a
                   histogram of the values on a signed log grid (32 bins per octave; its |x| median is the
                   reference of the "massive" test); optionally a linear histogram over `hist_range`
  moments          count, mean and central moments M2..M4 merged batch by batch (Pebay 2008), so the
                   kurtosis n*M4/M2^2 (3 for a Gaussian) is exact
  quant error      per-token asymmetric round-to-nearest at 8 and 4 bits: the mean over tokens of
                   ||x_t - Q(x_t)||^2 / ||x_t||^2 and the pooled ratio sum_t ||x_t - Q(x_t)||^2 / sum_t ||x_t||^2;
                   for the top-k tokens also the error on their bulk (entries < 16x the token's mean |x|:
                   a massive entry sets the step and the bulk of its token rounds to zero)

The top-k exactness argument for entries: an entry in the global top-k has |x| <= its token's absmax, and
fewer than k tokens can have a larger absmax, so it lies in one of the batch's top-k tokens.
"""
from __future__ import annotations

from typing import Optional

import torch

from .histograms import MAG_BINS, hist_quantile, magnitude_hist, signed_log_hist
from .token_quant import _TINY, _token_quant_sse, per_token_quant_error

RATIO_LEVELS = (2.0, 4.0, 8.0, 16.0, 32.0, 64.0)  # |x_tc| / mean_c'|x_tc'| >= 2^k counted per channel
QUANT_BITS = (8, 4)

TOKEN_FIELDS = ("score", "sample", "position", "token_id", "channel", "mean_abs", "q8_rel_mse", "q4_rel_mse",
                "q8_bulk_rel_mse", "q4_bulk_rel_mse")
ENTRY_FIELDS = ("score", "value", "sample", "position", "token_id", "channel")


def _level_counts(ratio: torch.Tensor) -> torch.Tensor:
    """(len(RATIO_LEVELS), C) counts of ratio[t, c] >= 2^k for k = 1..L, in one bincount: the float32
    exponent field is floor(log2 ratio) + 127 for every positive normal float."""
    N, C = ratio.shape
    L = len(RATIO_LEVELS)
    e = (ratio.view(torch.int32) >> 23).clamp_(127, 127 + L)  # 127 + min(max(floor(log2 r), 0), L)
    idx = e.mul_(C).add_(torch.arange(C, device=ratio.device, dtype=torch.int32) - 127 * C)  # bucket * C + c
    per_bucket = torch.bincount(idx.reshape(-1), minlength=(L + 1) * C).view(L + 1, C)
    return per_bucket.flip(0).cumsum(0).flip(0)[1:]  # tokens in bucket >= k


class _TopK:
    """Fixed-size top-k table: a dict of 1-D tensors of length k, ordered by "score" (descending)."""

    def __init__(self, k: int, fields: tuple, device):
        self.k = k
        self.t = {f: torch.full((k,), -float("inf") if f == "score" else -1,
                                dtype=torch.float32 if f in ("score", "value", "mean_abs") or f.endswith("mse")
                                else torch.long, device=device) for f in fields}

    def merge(self, new: dict) -> None:
        cat = {f: torch.cat([self.t[f], new[f].to(self.t[f].dtype)]) for f in self.t}
        idx = cat["score"].topk(self.k).indices
        self.t = {f: v[idx] for f, v in cat.items()}

    def rows(self) -> list:
        """Filled rows as dicts (python scalars), best first."""
        keep = self.t["score"] > -float("inf")
        cols = {f: v[keep].cpu().tolist() for f, v in self.t.items()}
        return [dict(zip(cols, vals)) for vals in zip(*cols.values())]


class SiteStats:
    """Streaming statistics of the input of one Linear (or of several Linears that share it)."""

    def __init__(self, layer: int, roles: tuple, topk: int = 32, hist_bins: int = 256,
                 hist_range: Optional[tuple] = None):
        if not isinstance(topk, int) or topk < 1:
            raise ValueError(f"topk={topk!r} must be a positive integer")
        if not isinstance(hist_bins, int) or hist_bins < 1:
            raise ValueError(f"hist_bins={hist_bins!r} must be a positive integer")
        if hist_range is not None and not (len(hist_range) == 2 and hist_range[0] < hist_range[1]):
            raise ValueError(f"hist_range={hist_range!r} must be None or (low, high) with low < high")
        self.layer, self.roles = layer, tuple(roles)
        self.topk, self.hist_bins = topk, hist_bins
        self.hist_range = None if hist_range is None else (float(hist_range[0]), float(hist_range[1]))
        self.n_tokens = 0
        self.channels = None  # set by the first batch

    @property
    def role(self) -> str:
        return self.roles[0]

    # ------------------------------------------------------------------------------------------------
    def _init(self, C: int, device) -> None:
        f32, f64, i64 = torch.float32, torch.float64, torch.long
        self.channels = C
        self.ch_absmax = torch.zeros(C, dtype=f32, device=device)
        self.ch_abssum = torch.zeros(C, dtype=f64, device=device)
        self.ch_large = torch.zeros(len(RATIO_LEVELS), C, dtype=i64, device=device)
        self.value_log_hist = torch.zeros(2 * MAG_BINS, dtype=i64, device=device)  # signed log grid
        self.tok_absmax_hist = torch.zeros(2 * MAG_BINS, dtype=i64, device=device)
        if self.hist_range is not None:
            self.value_hist = torch.zeros(self.hist_bins + 2, dtype=i64, device=device)  # [below, bins.., above]
        self.moments = torch.zeros(4, dtype=f64, device=device)  # mean, M2, M3, M4 (count = n_tokens * C)
        self.q_rel_sum = torch.zeros(len(QUANT_BITS), dtype=f64, device=device)  # sum_t rel_t
        self.q_sse = torch.zeros(len(QUANT_BITS), dtype=f64, device=device)  # sum_t ||x_t - Q(x_t)||^2
        self.ssx = torch.zeros((), dtype=f64, device=device)  # sum_t ||x_t||^2
        self.top_tokens = _TopK(self.topk, TOKEN_FIELDS, device)
        self.top_entries = _TopK(self.topk, ENTRY_FIELDS, device)

    @torch.no_grad()
    def update(self, x: torch.Tensor, sample: torch.Tensor, position: torch.Tensor,
               token_id: Optional[torch.Tensor] = None) -> None:
        """Add N token vectors x (N, C) with their sample index, position and token id (each (N,))."""
        if x.dim() != 2:
            raise ValueError(f"x must be (tokens, channels), got shape {tuple(x.shape)}")
        N, C = x.shape
        if N == 0:
            return
        if self.channels is None:
            self._init(C, x.device)
        elif C != self.channels:
            raise ValueError(f"site L{self.layer}/{self.role}: got {C} channels, expected {self.channels}")
        x = x.float()
        if token_id is None:
            token_id = torch.full((N,), -1, dtype=torch.long, device=x.device)
        # 1. magnitudes: per token absmax (with its channel) and mean |x|
        a = x.abs()
        tok_max, tok_arg = a.max(-1)
        tok_mean = a.mean(-1)
        # 2. per channel: absmax, sum |x|, and on how many tokens |x_tc| >= level * mean_c' |x_tc'|
        self.ch_absmax = torch.maximum(self.ch_absmax, a.amax(0))
        self.ch_abssum += a.sum(0)
        ratio = a / tok_mean.clamp(min=_TINY)[:, None]  # (N, C)
        self.ch_large += _level_counts(ratio)
        # 3. histograms: every value and every token absmax on the signed log grid, optional linear one
        self.value_log_hist += signed_log_hist(x)
        self.tok_absmax_hist += signed_log_hist(tok_max)
        if self.hist_range is not None:
            lo, hi = self.hist_range
            idx = ((x - lo) * (self.hist_bins / (hi - lo))).floor().clamp(-1, self.hist_bins) + 1
            self.value_hist += torch.bincount(idx.long().reshape(-1), minlength=self.hist_bins + 2)
        # 4. moments of all entries, merged with the running ones (Pebay's pairwise formulas)
        self._merge_moments(x, N * C)
        # 5. per-token quantization error at 8 and 4 bits
        sq = torch.linalg.vecdot(x, x)
        lo_t, hi_t = torch.aminmax(x, dim=-1, keepdim=True)
        lo_t, hi_t = lo_t.clamp(max=0), hi_t.clamp(min=0)
        rel = []
        for i, bits in enumerate(QUANT_BITS):
            err = _token_quant_sse(x, lo_t, hi_t, bits)
            rel.append(err / sq.clamp(min=_TINY))
            self.q_rel_sum[i] += rel[-1].sum()
            self.q_sse[i] += err.sum()
        self.ssx += sq.sum()
        # 6. top-k tokens by absmax (with their bulk error), then top-k entries among those tokens' rows
        k = min(self.topk, N)
        tok_idx = tok_max.topk(k).indices
        xk = x[tok_idx]  # (k, C)
        self.top_tokens.merge(dict(score=tok_max[tok_idx], sample=sample[tok_idx], position=position[tok_idx],
                                   token_id=token_id[tok_idx], channel=tok_arg[tok_idx], mean_abs=tok_mean[tok_idx],
                                   q8_rel_mse=rel[0][tok_idx], q4_rel_mse=rel[1][tok_idx],
                                   q8_bulk_rel_mse=per_token_quant_error(xk, 8, bulk=True),
                                   q4_bulk_rel_mse=per_token_quant_error(xk, 4, bulk=True)))
        rows = a[tok_idx]  # (k, C)
        ent = rows.reshape(-1).topk(min(self.topk, rows.numel())).indices
        r_i, c_i = ent // C, ent % C
        t_i = tok_idx[r_i]
        self.top_entries.merge(dict(score=a[t_i, c_i], value=x[t_i, c_i], sample=sample[t_i],
                                    position=position[t_i], token_id=token_id[t_i], channel=c_i))
        self.n_tokens += N

    def _merge_moments(self, x: torch.Tensor, n_b: int) -> None:
        mean_b = x.mean()
        d = x - mean_b
        d2 = d * d
        m2_b, m3_b, m4_b = d2.sum(), (d2 * d).sum(), d2.pow_(2).sum()
        mean_b, m2_b, m3_b, m4_b = (v.double() for v in (mean_b, m2_b, m3_b, m4_b))
        n_a = float(self.n_tokens * self.channels)
        n_b = float(n_b)
        if n_a == 0:
            self.moments = torch.stack([mean_b, m2_b, m3_b, m4_b])
            return
        mean_a, m2_a, m3_a, m4_a = self.moments
        n = n_a + n_b
        delta = mean_b - mean_a
        mean = mean_a + delta * n_b / n
        m2 = m2_a + m2_b + delta ** 2 * n_a * n_b / n
        m3 = (m3_a + m3_b + delta ** 3 * n_a * n_b * (n_a - n_b) / n ** 2
              + 3 * delta * (n_a * m2_b - n_b * m2_a) / n)
        m4 = (m4_a + m4_b + delta ** 4 * n_a * n_b * (n_a ** 2 - n_a * n_b + n_b ** 2) / n ** 3
              + 6 * delta ** 2 * (n_a ** 2 * m2_b + n_b ** 2 * m2_a) / n ** 2 + 4 * delta * (n_a * m3_b - n_b * m3_a) / n)
        self.moments = torch.stack([mean, m2, m3, m4])

    # ------------------------------------------------------------------------------------------------
    # derived quantities
    def _need_data(self) -> None:
        if self.n_tokens == 0:
            raise ValueError(f"site L{self.layer}/{self.role} saw no tokens (empty data or selection)")

    @property
    def ch_absmean(self) -> torch.Tensor:
        self._need_data()
        return (self.ch_abssum / self.n_tokens).float()

    @property
    def absmax(self) -> float:
        self._need_data()
        return float(self.ch_absmax.max())

    @property
    def mean(self) -> float:
        return float(self.moments[0])

    @property
    def var(self) -> float:
        self._need_data()
        return float(self.moments[1]) / (self.n_tokens * self.channels)

    @property
    def kurtosis(self) -> float:
        """Pearson kurtosis n*M4/M2^2 of all entries (3 for a Gaussian; heavy tails -> large)."""
        self._need_data()
        m2 = float(self.moments[1])
        return float(self.n_tokens * self.channels * float(self.moments[3]) / m2 ** 2) if m2 > 0 else float("nan")

    @property
    def abs_hist(self) -> torch.Tensor:
        """(MAG_BINS,) histogram of |x| over all entries (edges: `mag_bin_edges()`)."""
        return magnitude_hist(self.value_log_hist)

    def quantile_abs(self, q: float) -> float:
        """Quantile of |x| over all entries, from the log histogram (within 2.2%)."""
        self._need_data()
        return hist_quantile(self.abs_hist, q)

    @property
    def median_abs(self) -> float:
        return self.quantile_abs(0.5)

    def quant_rel_mse(self, bits: int, pooled: bool = False) -> float:
        """Mean over tokens of the per-token relative MSE of `fake_quant_per_token`; pooled=True gives
        sum SSE / sum ||x||^2 instead."""
        self._need_data()
        if bits not in QUANT_BITS:
            raise ValueError(f"bits={bits!r} was not recorded; allowed: {QUANT_BITS}")
        i = QUANT_BITS.index(bits)
        if pooled:
            return float(self.q_sse[i] / self.ssx)
        return float(self.q_rel_sum[i]) / self.n_tokens

    def large_fraction(self, level: float) -> torch.Tensor:
        """(C,) fraction of tokens on which channel c is >= level x the token's mean |x|."""
        self._need_data()
        if level not in RATIO_LEVELS:
            raise ValueError(f"level={level!r} is not recorded; allowed: {RATIO_LEVELS}")
        return self.ch_large[RATIO_LEVELS.index(level)].float().cpu() / self.n_tokens

    def top_token_rows(self) -> list:
        return self.top_tokens.rows()

    def top_entry_rows(self) -> list:
        return self.top_entries.rows()

    def tensors(self) -> dict:
        """Every tensor the site holds (the whole memory footprint)."""
        if self.channels is None:
            return {}
        out = {k: v for k, v in vars(self).items() if isinstance(v, torch.Tensor)}
        out.update({f"top_tokens.{k}": v for k, v in self.top_tokens.t.items()})
        out.update({f"top_entries.{k}": v for k, v in self.top_entries.t.items()})
        return out

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors().values())

    def to(self, device) -> "SiteStats":
        for k, v in list(vars(self).items()):
            if isinstance(v, torch.Tensor):
                setattr(self, k, v.to(device))
        if self.channels is not None:
            for table in (self.top_tokens, self.top_entries):
                table.t = {k: v.to(device) for k, v in table.t.items()}
        return self

    def __repr__(self) -> str:
        if self.n_tokens == 0:
            return f"SiteStats(L{self.layer} {'/'.join(self.roles)}, empty)"
        return (f"SiteStats(L{self.layer} {'/'.join(self.roles)}, tokens={self.n_tokens}, C={self.channels}, "
                f"absmax={self.absmax:.3g}, median|x|={self.median_abs:.3g}, kurtosis={self.kurtosis:.3g})")
