"""dLLM-specific views of the activation statistics, which the study (arXiv 2508.14896) did not show.

A masked-diffusion LM never sees clean text at inference: its input is a prompt followed by [MASK]
tokens that are filled in over the denoising steps. Calibration on clean text (as in the paper) may
therefore miss the ranges the model really meets. Three views:

1. `mask_ratio_sweep`: the same text with 0, 25, 50, 75, 100% of its tokens replaced by [MASK]
   (config.mask_token_id), split into masked and clean positions;
2. `prompt_vs_masked`: a generation canvas (prompt + gen_length masks) split into prompt and masked positions;
3. `steps_sweep`: statistics at every (or every k-th) step of a real denoising run, split into prompt,
   still-masked and already-decoded positions (hooks run during `dllmq.decoding.generate`).
"""
from __future__ import annotations

from typing import Optional, Sequence

import pandas as pd
import torch

from ..models.layout import ROLES, family_of
from .collect import ActivationRecorder, collect_groups, iter_batches

MASK_RATIOS = (0.0, 0.25, 0.5, 0.75, 1.0)


def mask_token_id(model) -> int:
    mask_id = getattr(model.config, "mask_token_id", None)
    if mask_id is None:
        raise ValueError(f"the model (family {family_of(model)!r}) has no config.mask_token_id; "
                         "mask views need a masked-diffusion model (LLaDA or Dream)")
    return int(mask_id)


def masked_positions(mask_id: int):
    """Selector: positions holding the mask token."""
    return lambda ids, mask: ids == mask_id


def clean_positions(mask_id: int):
    """Selector: positions not holding the mask token."""
    return lambda ids, mask: ids != mask_id


def mask_tokens(ids: torch.Tensor, ratio: float, mask_id: int, attention_mask: Optional[torch.Tensor] = None,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """A copy of ids (B, T) where exactly round(ratio * n_real) real tokens of each row are the mask token."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ratio={ratio!r} must be in [0, 1]")
    valid = torch.ones_like(ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    scores = torch.rand(ids.shape, generator=generator)
    scores[~valid.cpu()] = 2.0  # padding is never chosen
    out = ids.clone()
    for row in range(ids.shape[0]):
        k = int(round(ratio * int(valid[row].sum())))
        out[row, scores[row].argsort()[:k].to(ids.device)] = mask_id
    return out


def mask_ratio_sweep(model, data, ratios: Sequence[float] = MASK_RATIOS, roles: Sequence[str] = ROLES,
                     layers=None, *, tok=None, seed: int = 0, batch_size: int = 8, max_length: Optional[int] = None,
                     progress: bool = True, **stat_kw) -> dict:
    """{ratio: {"all", "masked", "clean": ActivationStats}}: the same data with a growing share of masks.

    The masks are drawn with `seed` (same positions for every model); groups with no token are empty."""
    mask_id = mask_token_id(model)
    batches = list(iter_batches(data, tok, batch_size, max_length))
    groups = {"all": None, "masked": masked_positions(mask_id), "clean": clean_positions(mask_id)}
    out = {}
    for ratio in ratios:
        gen = torch.Generator().manual_seed(seed)
        masked = [(mask_tokens(ids, ratio, mask_id, mask, gen), mask) for ids, mask in batches]
        out[float(ratio)] = collect_groups(model, masked, groups, roles, layers, batch_size=batch_size,
                                           progress=progress, desc=f"mask ratio {ratio:.2f}", **stat_kw)
    return out


def generation_canvas(tok, prompts: Sequence[str], gen_length: int, mask_id: int, chat_template: bool = False):
    """(ids, attention_mask, prompt_length): left-padded prompts followed by gen_length mask tokens,
    exactly the input of a sampler's first step."""
    from ..decoding import encode_prompts
    ids, mask = encode_prompts(tok, prompts, chat_template)
    B, Lp = ids.shape
    ids = torch.cat([ids, torch.full((B, gen_length), mask_id, dtype=torch.long)], 1)
    mask = torch.cat([mask, torch.ones(B, gen_length, dtype=mask.dtype)], 1)
    return ids, mask, Lp


def _region(gen_length: int, prompt: bool):
    """Selector of the prompt (positions before the last gen_length) or of the answer region."""
    def select(ids, mask):
        T = ids.shape[1]
        pos = torch.arange(T, device=ids.device)[None].expand_as(ids)
        return pos < T - gen_length if prompt else pos >= T - gen_length
    return select


def prompt_vs_masked(model, tok, prompts: Sequence[str], gen_length: int = 64, roles: Sequence[str] = ROLES,
                     layers=None, *, chat_template: bool = False, batch_size: int = 8, progress: bool = True,
                     **stat_kw) -> dict:
    """{"prompt", "masked": ActivationStats} on the first-step canvas (prompt + gen_length masks)."""
    mask_id = mask_token_id(model)
    ids, mask, _ = generation_canvas(tok, prompts, gen_length, mask_id, chat_template)
    groups = {"prompt": _region(gen_length, True), "masked": _region(gen_length, False)}
    return collect_groups(model, {"input_ids": ids, "attention_mask": mask}, groups, roles, layers,
                          batch_size=batch_size, progress=progress, desc="prompt vs masked", **stat_kw)


def steps_sweep(model, tok, prompts: Sequence[str], *, steps: int = 16, gen_length: int = 16,
                block_length: Optional[int] = None, every: int = 1, roles: Sequence[str] = ("down",), layers=None,
                topk: int = 16, hist_bins: int = 64, **generate_kw) -> tuple:
    """({step: {"prompt", "masked", "decoded": ActivationStats}}, Generation) for a real denoising run.

    One model call is one step (cfg_scale=0; with CFG both passes of a step share the call). Statistics
    are kept for every `every`-th step; keep roles/layers small for big models (memory grows with steps)."""
    from ..decoding import generate
    mask_id = mask_token_id(model)
    answer = _region(gen_length, False)
    groups = {"prompt": _region(gen_length, True),
              "masked": lambda ids, m: answer(ids, m) & (ids == mask_id),
              "decoded": lambda ids, m: answer(ids, m) & (ids != mask_id)}
    rec = ActivationRecorder(model, roles, layers, groups=groups, per_call=True, every=every, topk=topk,
                             hist_bins=hist_bins)
    with rec:
        gen = generate(model, tok, list(prompts), steps=steps, gen_length=gen_length, block_length=block_length,
                       **generate_kw)
    out = {call: {name: s.cpu() for name, s in sets.items()} for call, sets in rec.calls}
    return out, gen


def views_frame(views: dict, key: str = "key") -> pd.DataFrame:
    """Flatten {key: {group: ActivationStats}} (or {key: ActivationStats}, e.g. the output of
    `prompt_vs_masked`) into one long summary table: `ActivationStats.frame()` rows plus `key` and `group`
    columns (the group of a flat dict is each statistics' own `.group`); empty groups are left out."""
    parts = []
    for k, value in views.items():
        groups = value if isinstance(value, dict) else {value.group: value}
        for group, stats in groups.items():
            f = stats.frame()
            if len(f):
                parts.append(f.assign(**{key: k, "group": group}))
    if not parts:
        raise ValueError("no statistics to tabulate (every group was empty)")
    out = pd.concat(parts, ignore_index=True)
    return out[[key, "group"] + [c for c in out.columns if c not in (key, "group")]]
