"""Output fidelity of a quantized dLLM against its FP model, on masked held-out text.

A dLLM predicts masked tokens, so fidelity is measured where it matters: mask a fraction r of the
tokens of held-out windows, run both models, and compare their distributions at the masked positions:

    KL(p_fp || p_q)  mean over masked positions (nats)      0 = identical predictions
    top1_agree       fraction of masked positions with the same argmax
    logit_rel_err    ||z_q - z_fp||^2 / ||z_fp||^2 over masked positions

It needs no labels, so it is meaningful even for random-weight models (the Dream W-A study on CPU).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def heldout_windows(tok, model_name: str, n: int = 8, seq_len: int = 64, seed: int = 1234) -> torch.Tensor:
    """(n, seq_len) token ids the quantizer never saw: the tiny corpus with another seed for tiny models,
    the held-out part of the bundled prose otherwise."""
    from ..calibration import _encode, get_calibration, load_text, random_windows

    if model_name.startswith("tiny"):
        return get_calibration("tiny", tok, n_samples=n, seq_len=seq_len, seed=seed)
    return random_windows(_encode(tok, load_text("test")), n, seq_len, seed, "text-test")


def mask_fraction(ids: torch.Tensor, ratio: float, mask_id: int, seed: int) -> tuple:
    """Replace a random `ratio` of the tokens in each row by mask_id; returns (masked ids, bool mask)."""
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"ratio={ratio!r} must be in (0, 1]")
    g = torch.Generator().manual_seed(seed)
    n, T = ids.shape
    k = max(1, round(ratio * T))
    order = torch.rand(n, T, generator=g).argsort(dim=1)  # (n, T) random permutation per row
    mask = torch.zeros(n, T, dtype=torch.bool)
    mask.scatter_(1, order[:, :k], True)
    return ids.masked_fill(mask, mask_id), mask


@torch.no_grad()
def fidelity(fp_model, q_model, ids: torch.Tensor, mask_id: int, ratio: float = 0.5, seed: int = 0,
             device: Optional[str] = None) -> dict:
    """KL, top-1 agreement and relative logit error of q_model vs fp_model at masked positions."""
    device = device or next(fp_model.parameters()).device
    masked, mask = mask_fraction(ids, ratio, mask_id, seed)
    masked, mask = masked.to(device), mask.to(device)
    z_fp = fp_model(masked).logits.float()[mask]  # (n_masked, V)
    z_q = q_model(masked).logits.float()[mask]
    logp_fp, logp_q = F.log_softmax(z_fp, -1), F.log_softmax(z_q, -1)
    kl = (logp_fp.exp() * (logp_fp - logp_q)).sum(-1)  # (n_masked,)
    agree = (z_fp.argmax(-1) == z_q.argmax(-1)).float()
    rel = (z_q - z_fp).pow(2).sum() / z_fp.pow(2).sum().clamp_min(1e-30)
    n = int(mask.sum())
    return {"kl": (float(kl.mean()), float(kl.std() / n ** 0.5) if n > 1 else None, n),
            "top1_agree": (float(agree.mean()), float(agree.std() / n ** 0.5) if n > 1 else None, n),
            "logit_rel_err": (float(rel), None, n)}


def fidelity_rows(fp_model, q_model, tok, model_name: str, ratio: float = 0.5, n: int = 8, seq_len: int = 64,
                  seed: int = 0) -> list:
    """Store rows (task "fidelity") for one quantized model."""
    ids = heldout_windows(tok, model_name, n=n, seq_len=seq_len)
    mask_id = getattr(tok, "mask_token_id", None)
    if mask_id is None:
        mask_id = getattr(fp_model.config, "mask_token_id", None)
    if mask_id is None:
        raise ValueError(f"{model_name} has no mask token: fidelity needs a diffusion model's mask id")
    stats = fidelity(fp_model, q_model, ids, mask_id, ratio=ratio, seed=seed)
    return [{"task": "fidelity", "category": "fidelity", "metric": name, "value": v, "stderr": se, "n": count}
            for name, (v, se, count) in stats.items()]
