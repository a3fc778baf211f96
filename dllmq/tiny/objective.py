"""The LLaDA masked-diffusion training loss (Nie et al., "Large Language Diffusion Models", arXiv 2502.09992).

Symbols: x0 the clean tokens, t ~ U(0,1) one time per sequence, p = (1 - eps) t + eps the mask rate
(eps = 1e-3), xt = x0 with every maskable token replaced by [MASK] independently with probability p,
M the set of masked positions. The loss is the negative ELBO

    L = E_t [ (1/p) * sum_{i in M} -log p_theta(x0_i | xt) ] / N,

where N is the number of maskable tokens of the sequence: all tokens for pretraining rows, the answer
length for SFT rows (the prompt is never masked, as in LLaDA's SFT). The batch loss is the mean over rows.
We draw the t of a batch stratified, t_i = (u + i) / B mod 1: each t_i is still U(0,1), so the
estimate stays unbiased, with lower variance than independent draws.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

EPS = 1e-3


def mask_rates(batch: int, generator: Optional[torch.Generator] = None, device="cpu", eps: float = EPS) -> torch.Tensor:
    """p_i = (1 - eps) t_i + eps with stratified t_i ~ U(0,1); shape (batch,)."""
    u = torch.rand((), generator=generator, device=device)
    t = (u + torch.arange(batch, device=device) / batch) % 1.0
    return (1 - eps) * t + eps


def masked_diffusion_loss(model, input_ids: torch.Tensor, maskable: torch.Tensor, mask_id: int,
                          attention_mask: Optional[torch.Tensor] = None, generator: Optional[torch.Generator] = None,
                          p: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The LLaDA loss of one batch. input_ids, maskable, attention_mask: (B, T); p: optional (B,) rates."""
    B, T = input_ids.shape
    # 1. one mask rate per sequence
    if p is None:
        p = mask_rates(B, generator, input_ids.device)
    # 2. forward process: mask each maskable token independently with probability p
    draw = torch.rand((B, T), generator=generator, device=input_ids.device)
    masked = (draw < p[:, None]) & maskable
    noisy = torch.where(masked, torch.full_like(input_ids, mask_id), input_ids)
    # 3. predict every position; cross-entropy on the masked ones only
    logits = model(input_ids=noisy, attention_mask=attention_mask).logits  # (B, T, V)
    ce = F.cross_entropy(logits.float().transpose(1, 2), input_ids, reduction="none")  # (B, T)
    # 4. weight by 1/p, normalise by the number of maskable tokens of each row, average over rows
    per_row = (ce * masked).sum(dim=1) / p / maskable.sum(dim=1).clamp(min=1)
    return per_row.mean()
