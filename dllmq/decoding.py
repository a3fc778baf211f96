"""Masked-diffusion samplers for LLaDA and Dream, batched, seeded, with an optional per-step trace.

LLaDA (Nie et al. 2025, arXiv 2502.09992; `generate.py` of ML-GSAI/LLaDA):
  1. canvas = prompt ++ [MASK] * gen_length; the answer is filled block by block, left to right
     (block_length == gen_length is pure diffusion, smaller blocks are semi-autoregressive);
  2. each block gets steps / n_blocks steps; step j unmasks quota[j] tokens, where
     quota = block_length // steps_per_block, plus one for the first (block_length % steps_per_block) steps;
  3. each step: one forward over the whole canvas (optional CFG), predict x0 by argmax of the logits with
     float64 Gumbel noise (temperature), score every masked position of the current block by its
     confidence (softmax probability of x0: "low_confidence" remasking, or a uniform draw: "random"),
     commit the top-quota positions. Committed tokens never change.
Dream (Ye et al. 2025, arXiv 2508.15487; `generation_utils.py`): logits shifted by one position (Dream
was initialised from an AR model), time grid linspace(1, eps, steps+1); "origin" unmasks each masked
position with probability 1 - s/t, the confidence algorithms ("maskgit_plus", "topk_margin", "entropy")
commit the floor(n_masked * (1 - s/t)) most confident positions (all at the last step).

Two sampler modes (`sampler_mode`, see docs/fidelity.md):
  "guarded"   (the kit's default) the [MASK] logit is set to -inf before choosing, so a step never commits
              a [MASK] and its quota is always met; confidences are softmaxes in fp32 over the rest of the
              vocabulary; LLaDA ranks only the current block. A trained model gives [MASK] ~0 probability,
              so this changes nothing there; a random or heavily quantized model may predict [MASK].
  "official"  the official loops step for step: argmax and softmax over the whole vocabulary in the
              logits' dtype (a [MASK] prediction commits nothing and stays masked), LLaDA ranks every
              still-masked answer position up to the current block's end (a leftover mask of an earlier
              block competes for the quota), Dream counts and ranks over the whole canvas with its batch-
              averaged quota in fp32, and the random draws have the official shapes, so greedy samples are
              token-identical to `generate.py` / `diffusion_generate` (the paper presets use this mode).
Reference bug avoided in both modes: CFG runs with the attention mask of a padded batch. In guarded mode
EOS/EoT suppression (`confidence_eos_eot_inf`) acts on both tokens at any temperature; official mode keeps
generate.py's behaviour (both at temperature 0, only EoT above).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from .models.layout import family_of

REMASKING = ("low_confidence", "random")
DREAM_ALGS = ("origin", "maskgit_plus", "topk_margin", "entropy")
SAMPLER_MODES = ("guarded", "official")


def check_sampler_mode(sampler_mode: str) -> str:
    if sampler_mode not in SAMPLER_MODES:
        raise ValueError(f"sampler_mode={sampler_mode!r} is unknown; allowed: {SAMPLER_MODES} "
                         "('guarded': never commit [MASK] (kit default), 'official': the official loops)")
    return sampler_mode


@dataclass
class StepTrace:
    """What one denoising step did, per row: which positions it unmasked, with which tokens and confidences.

    `positions` are indices into the generated region (0..gen_length-1); `canvas` is the generated region
    before the step (MASK where still masked)."""

    step: int
    block: int
    positions: list  # per row: LongTensor of unmasked positions
    tokens: list  # per row: LongTensor of committed token ids
    confidences: list  # per row: FloatTensor
    canvas: torch.Tensor  # (B, gen_length) before this step


@dataclass
class Generation:
    """Result of `generate`: decoded answers, raw answer ids, the full canvas and the optional trace."""

    text: list
    ids: torch.Tensor  # (B, gen_length)
    sequences: torch.Tensor  # (B, prompt_len + gen_length), left-padded prompt included
    prompt_length: int
    trace: Optional[list] = None
    settings: dict = field(default_factory=dict)

    def unmask_order(self) -> torch.Tensor:
        """(B, gen_length) step index at which each answer position was committed (-1 if never traced)."""
        if self.trace is None:
            raise ValueError("trace=False: run generate(..., trace=True) to record the steps")
        order = torch.full(self.ids.shape, -1, dtype=torch.long)
        for t in self.trace:
            for row, pos in enumerate(t.positions):
                order[row, pos] = t.step
        return order

    def confidence_map(self) -> torch.Tensor:
        """(B, gen_length) confidence each position had when it was committed (NaN if never traced)."""
        if self.trace is None:
            raise ValueError("trace=False: run generate(..., trace=True) to record the steps")
        conf = torch.full(self.ids.shape, float("nan"))
        for t in self.trace:
            for row, (pos, c) in enumerate(zip(t.positions, t.confidences)):
                conf[row, pos] = c.float().cpu()
        return conf


# --------------------------------------------------------------------------------------------------
# argument checks


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_number(name: str, value, low: float = 0.0, hint: str = "") -> None:
    """A finite real number >= low (bools and strings are refused, not compared)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}={value!r} must be a number >= {low:g}{hint}")
    if not math.isfinite(value) or value < low:
        raise ValueError(f"{name}={value!r} must be a finite number >= {low:g}{hint}")


def _check_flag(name: str, value) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name}={value!r} must be a bool (True or False)")


def _check_input_ids(input_ids, attention_mask) -> None:
    if not torch.is_tensor(input_ids) or input_ids.dim() != 2 or input_ids.is_floating_point() \
            or input_ids.dtype == torch.bool:
        raise TypeError(f"input_ids must be an integer tensor (B, prompt_len) of token ids, got "
                        f"{input_ids.dtype if torch.is_tensor(input_ids) else type(input_ids).__name__} "
                        f"{tuple(input_ids.shape) if torch.is_tensor(input_ids) else ''}")
    if attention_mask is not None and (not torch.is_tensor(attention_mask) or attention_mask.shape != input_ids.shape):
        raise ValueError(f"attention_mask must be a tensor of the shape of input_ids {tuple(input_ids.shape)}")


def max_sequence_length(model) -> Optional[int]:
    """The longest canvas the model was built for (LLaDA max_sequence_length, else max_position_embeddings)."""
    config = getattr(model, "config", None)
    limit = getattr(config, "max_sequence_length", None) or getattr(config, "max_position_embeddings", None)
    return int(limit) if _is_int(limit) and limit > 0 else None


def vocab_size(model) -> int:
    """Rows of the input embedding (LLaDA pads its vocabulary: embedding_size >= vocab_size)."""
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if embeddings is not None and hasattr(embeddings, "num_embeddings"):
        return int(embeddings.num_embeddings)
    return int(model.config.vocab_size)


def check_mask_id(model, mask_id: Optional[int] = None) -> int:
    """The [MASK] id the samplers write (model.config.mask_token_id unless given), inside the vocabulary."""
    mask_id = getattr(model.config, "mask_token_id", None) if mask_id is None else mask_id
    if not _is_int(mask_id):
        raise ValueError(f"mask_token_id={mask_id!r}: a masked-diffusion model needs an int [MASK] id in its config "
                         "(config.mask_token_id) or passed as mask_id=")
    vocab = vocab_size(model)
    if not 0 <= mask_id < vocab:
        raise ValueError(f"mask_token_id={mask_id} is outside the model's vocabulary of {vocab} ids (0..{vocab - 1}): "
                         "the config does not belong to these weights")
    return mask_id


def _check_llada_args(steps, gen_length, block_length, temperature, cfg_scale, remasking):
    if not _is_int(gen_length) or gen_length < 1:
        raise ValueError(f"gen_length={gen_length!r} must be a positive integer")
    if not _is_int(block_length) or block_length < 1:
        raise ValueError(f"block_length={block_length!r} must be a positive integer (use gen_length for pure diffusion)")
    if gen_length % block_length:
        divisors = [d for d in range(1, gen_length + 1) if gen_length % d == 0]
        raise ValueError(f"gen_length={gen_length} is not divisible by block_length={block_length}; "
                         f"choose block_length from {divisors[-8:]}")
    n_blocks = gen_length // block_length
    if not _is_int(steps) or steps < 1:
        raise ValueError(f"steps={steps!r} must be a positive integer")
    if steps % n_blocks:
        raise ValueError(f"steps={steps} is not divisible by the number of blocks {n_blocks} "
                         f"(= gen_length/block_length); use a multiple of {n_blocks}, e.g. {n_blocks * max(1, steps // n_blocks)}")
    if steps > gen_length:
        raise ValueError(f"steps={steps} exceeds gen_length={gen_length}: every step must unmask at least one "
                         "token; use steps <= gen_length (steps == gen_length is the paper's setting)")
    _check_number("temperature", temperature, hint=" (0 = greedy)")
    _check_number("cfg_scale", cfg_scale, hint=" (0 = no classifier-free guidance)")
    if remasking not in REMASKING:
        raise ValueError(f"remasking={remasking!r} is unknown; allowed: {REMASKING}")
    return n_blocks


def unmask_quota(n_masked: int, steps: int) -> list:
    """Tokens to unmask at each of `steps` steps: the base count, +1 on the first (n_masked % steps) steps.

    A linear noise schedule makes the expected number of unmasked tokens per step constant."""
    base, remainder = divmod(n_masked, steps)
    return [base + (1 if j < remainder else 0) for j in range(steps)]


# --------------------------------------------------------------------------------------------------
# shared helpers


def gumbel_argmax(logits: torch.Tensor, temperature: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    """argmax of logits/T + Gumbel noise, drawn in float64 (low precision truncates the noise tail and
    lowers the effective temperature, arXiv 2409.02908). temperature 0 is plain argmax."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits.double()
    u = torch.rand(logits.shape, dtype=torch.float64, device=logits.device, generator=generator)
    # exp(l) / (-log u)^T has the same argmax as l + T * Gumbel
    return (logits.exp() / (-torch.log(u)) ** temperature).argmax(-1)


def _forward(model, x, attention_mask, logits_slice):
    return model(x, attention_mask=attention_mask, logits_slice=logits_slice).logits


def _cfg_logits(model, x, attention_mask, prompt_mask, mask_id, cfg_scale, logits_slice):
    """Classifier-free guidance: the unconditional pass masks every prompt token; both passes share the
    (doubled) attention mask, so padded batches stay correct."""
    if cfg_scale == 0:
        return _forward(model, x, attention_mask, logits_slice)
    uncond = x.masked_fill(prompt_mask, mask_id)
    am = None if attention_mask is None else torch.cat([attention_mask, attention_mask])
    logits = _forward(model, torch.cat([x, uncond]), am, logits_slice)
    cond, unc = logits.chunk(2)
    return unc + (cfg_scale + 1) * (cond - unc)


def _canvas(input_ids, attention_mask, gen_length: int, mask_id: int):
    """prompt ++ [MASK] * gen_length, and the attention mask extended with ones over the answer."""
    B = input_ids.shape[0]
    masks = torch.full((B, gen_length), mask_id, dtype=torch.long, device=input_ids.device)
    x = torch.cat([input_ids, masks], dim=1)
    if attention_mask is not None:
        attention_mask = torch.cat([attention_mask, torch.ones_like(masks, dtype=attention_mask.dtype)], 1)
    return x, attention_mask


# --------------------------------------------------------------------------------------------------
# LLaDA


def _llada_confidence(logits, x0, remasking, generator, canvas_shape, lo, end, official,
                      suppress: tuple) -> torch.Tensor:
    """Confidence of each prediction in the logits region [lo, end): softmax probability of x0 or a uniform
    draw. Official mode draws the uniforms over the whole canvas, as generate.py does, and softmaxes with
    the `suppress` tokens' logits at -inf (its confidence_eos_eot_inf)."""
    if remasking == "random":
        if official:
            return torch.rand(canvas_shape, device=x0.device, generator=generator)[:, lo:end]
        return torch.rand(x0.shape, device=x0.device, generator=generator)
    if suppress:
        logits = logits.clone()
        logits[..., list(suppress)] = -torch.inf
    return F.softmax(logits, dim=-1).gather(-1, x0[..., None]).squeeze(-1)


@torch.no_grad()
def llada_sample(model, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None, *,
                 steps: int = 128, gen_length: int = 128, block_length: int = 128, temperature: float = 0.0,
                 cfg_scale: float = 0.0, remasking: str = "low_confidence", mask_id: Optional[int] = None,
                 eos_id: Optional[int] = None, eot_id: Optional[int] = None, logits_eos_inf: bool = False,
                 confidence_eos_eot_inf: bool = False, generator: Optional[torch.Generator] = None,
                 trace: bool = False, sampler_mode: str = "guarded"):
    """LLaDA's sampler on token ids. input_ids: (B, Lp) left-padded prompts. Returns (canvas, trace).

    sampler_mode "guarded" (default) or "official" -- see the module docstring."""
    n_blocks = _check_llada_args(steps, gen_length, block_length, temperature, cfg_scale, remasking)
    official = check_sampler_mode(sampler_mode) == "official"
    _check_input_ids(input_ids, attention_mask)
    mask_id = check_mask_id(model, mask_id)
    B, Lp = input_ids.shape
    device = input_ids.device
    x, attention_mask = _canvas(input_ids, attention_mask, gen_length, mask_id)
    prompt_mask = torch.zeros_like(x, dtype=torch.bool)
    prompt_mask[:, :Lp] = True
    # official: every masked position left of the block end competes; masks inside the prompt (infilling)
    # are filled too, as generate.py does (they never change after the start: committed tokens stay)
    first = 0 if official and bool((input_ids == mask_id).any()) else Lp
    steps_per_block = steps // n_blocks
    specials = tuple(t for t in (eos_id, eot_id) if t is not None)
    records = [] if trace else None
    step_index = 0
    for b in range(n_blocks):
        start, end = Lp + b * block_length, Lp + (b + 1) * block_length
        lo = first if official else start  # the logits region
        quotas = [unmask_quota(int(n), steps_per_block) for n in (x[:, start:end] == mask_id).sum(-1)]
        for j in range(steps_per_block):
            logits = _cfg_logits(model, x, attention_mask, prompt_mask, mask_id, cfg_scale, (lo, end))
            if not official:
                logits = logits.float()  # (B, block_length, V)
                logits[..., mask_id] = -torch.inf  # never predict [MASK] itself: a step always meets its quota
            if logits_eos_inf and eos_id is not None:
                logits[..., eos_id] = -torch.inf
            region = x[:, lo:end]  # view: writes go into x
            masked = region == mask_id
            x0 = gumbel_argmax(logits, temperature, generator)
            if official and confidence_eos_eot_inf:  # generate.py: both at temperature 0, only EoT above
                suppress = specials if temperature == 0 else tuple(t for t in (eot_id,) if t is not None)
            else:
                suppress = ()
            conf = _llada_confidence(logits, x0, remasking, generator, x.shape, lo, end, official, suppress)
            if confidence_eos_eot_inf and not official:  # EOS/EoT predictions never win (filled last)
                for special in specials:
                    conf = conf.masked_fill(x0 == special, -torch.inf)
            x0 = torch.where(masked, x0, region)  # a position that is not masked keeps its token
            conf = conf.masked_fill(~masked, -torch.inf)
            if official:  # rank over the whole canvas with the same tensor shapes as generate.py
                full = torch.full(x.shape, -torch.inf, dtype=conf.dtype, device=device)
                full[:, lo:end] = conf
                conf, offset = full, 0
                x0_full = x.clone()
                x0_full[:, lo:end] = x0
                x0 = x0_full
            else:
                offset = lo
            chosen = [conf[r].topk(quotas[r][j]).indices for r in range(B)]
            if records is not None:
                records.append(_step_record(step_index, b, x, x0, conf, chosen, Lp, offset))
            for r in range(B):
                x[r, offset + chosen[r]] = x0[r, chosen[r]]
            step_index += 1
    return x, records


def _step_record(step, block, x, x0, conf, chosen, Lp, offset) -> StepTrace:
    """Trace of one step; x0/conf/chosen index the canvas from `offset`. Positions left of the answer
    (a prompt overwritten by the official Dream loop) are not recorded."""
    positions, tokens, confidences = [], [], []
    for r, idx in enumerate(chosen):
        keep = idx[idx + offset >= Lp]
        positions.append((keep + offset - Lp).cpu())
        tokens.append(x0[r, keep].cpu())
        confidences.append(conf[r, keep].float().cpu())
    return StepTrace(step=step, block=block, positions=positions, tokens=tokens, confidences=confidences,
                     canvas=x[:, Lp:].cpu().clone())


# --------------------------------------------------------------------------------------------------
# Dream


def _filter_top_p_top_k(logits: torch.Tensor, top_p: Optional[float], top_k: Optional[int],
                        fill: float = -torch.inf) -> torch.Tensor:
    if top_p is not None and top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum > top_p
        drop[..., 1:] = drop[..., :-1].clone()  # keep the first token that crosses top_p
        drop[..., 0] = False
        logits = logits.masked_fill(drop.scatter(-1, order, drop), fill)
    if top_k is not None and top_k > 0:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, fill)
    return logits


def dream_sample_tokens(logits: torch.Tensor, temperature: float, top_p, top_k, alg: str,
                        generator: Optional[torch.Generator], official: bool = False):
    """(N, V) logits -> (confidence, x0) per Dream's `sample_tokens`.

    official: filtered logits get the dtype's lowest value (not -inf), the negative entropy is
    sum p log(p + 1e-10), and a temperature draw samples with replacement, all as Dream's code does."""
    if temperature > 0:
        logits = logits / temperature
    fill = torch.finfo(logits.dtype).min if official else -torch.inf
    logits = _filter_top_p_top_k(logits, top_p, top_k, fill)
    probs = logits.softmax(-1)
    if temperature > 0:
        x0 = torch.multinomial(probs, 1, replacement=official, generator=generator).squeeze(-1)
        conf = probs.gather(-1, x0[:, None]).squeeze(-1)
    else:
        conf, x0 = probs.max(-1)
    if alg == "topk_margin":
        top2 = probs.topk(2, dim=-1).values
        conf = top2[:, 0] - top2[:, 1]
    elif alg == "entropy":  # negative entropy: higher = more certain
        conf = (probs * (probs + 1e-10).log()).sum(-1) if official else (probs * probs.clamp_min(1e-30).log()).sum(-1)
    return conf, x0


def _check_dream_args(steps, gen_length, temperature, alg, top_k, top_p=None, alg_temp=None):
    if alg not in DREAM_ALGS:
        raise ValueError(f"alg={alg!r} is unknown; allowed: {DREAM_ALGS}")
    if not _is_int(steps) or steps < 1:
        raise ValueError(f"steps={steps!r} must be a positive integer")
    if not _is_int(gen_length) or gen_length < 1:
        raise ValueError(f"gen_length={gen_length!r} must be a positive integer")
    _check_number("temperature", temperature, hint=" (0 = greedy)")
    if top_p is not None:
        _check_number("top_p", top_p, hint=" and <= 1, or None (no nucleus filter)")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p={top_p!r} must lie in (0, 1], or be None (no nucleus filter)")
    if alg_temp is not None:
        _check_number("alg_temp", alg_temp, hint=", or None (rank by confidence without sampling)")
    if top_k is not None and (not _is_int(top_k) or top_k < 1):
        raise ValueError(f"top_k={top_k!r} must be a positive integer or None (no top-k filter, as Dream's "
                         "evaluation harness passes)")


def _dream_logits(model, x, attention_mask, Lp: int, whole: bool) -> torch.Tensor:
    """Shifted logits (the output at j-1 predicts token j): of the answer positions, or of the whole canvas
    (position 0 keeps its own) when `whole` -- the official loop once a [MASK] sits in the prompt."""
    if not whole:
        return _forward(model, x, attention_mask, (Lp - 1, x.shape[1] - 1))
    logits = _forward(model, x, attention_mask, None)
    return torch.cat([logits[:, :1], logits[:, :-1]], dim=1)


@torch.no_grad()
def dream_sample(model, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None, *,
                 steps: int = 512, gen_length: int = 512, temperature: float = 0.0, top_p: Optional[float] = None,
                 top_k: Optional[int] = None, alg: str = "origin", alg_temp: Optional[float] = None,
                 eps: float = 1e-3, mask_id: Optional[int] = None, generator: Optional[torch.Generator] = None,
                 trace: bool = False, sampler_mode: str = "guarded"):
    """Dream's `diffusion_generate` on token ids. Returns (canvas, trace).

    top_k=None (no filter) is what Dream's evaluation harness passes; a plain `diffusion_generate` call
    would inherit top_k from the model's generation config. sampler_mode: see the module docstring."""
    _check_dream_args(steps, gen_length, temperature, alg, top_k, top_p, alg_temp)
    official = check_sampler_mode(sampler_mode) == "official"
    _check_input_ids(input_ids, attention_mask)
    if input_ids.shape[1] == 0:
        raise ValueError("input_ids has no prompt token: Dream predicts each token from the one before it, so a "
                         "prompt needs at least one token (e.g. BOS)")
    mask_id = check_mask_id(model, mask_id)
    B, Lp = input_ids.shape
    device = input_ids.device
    x, attention_mask = _canvas(input_ids, attention_mask, gen_length, mask_id)
    if attention_mask is not None and bool(attention_mask.all()):
        attention_mask = None
    timesteps = torch.linspace(1, eps, steps + 1, device=device)
    records = [] if trace else None
    for i in range(steps):
        if official:
            _dream_official_step(model, x, attention_mask, Lp, mask_id, timesteps, i, steps, temperature, top_p,
                                 top_k, alg, alg_temp, generator, records)
            continue
        gen = x[:, Lp:]  # view
        masked = gen == mask_id  # (B, gen_length)
        if not masked.any():
            break
        logits = _dream_logits(model, x, attention_mask, Lp, False).float()  # (B, gen_length, V)
        logits[..., mask_id] = -torch.inf  # never predict [MASK] itself
        t, s = timesteps[i].item(), timesteps[i + 1].item()
        last = i == steps - 1
        before = gen.clone()
        if alg == "origin":
            p_transfer = 1.0 if last else 1 - s / t
            flip = (torch.rand(masked.shape, device=device, generator=generator) < p_transfer) & masked
            conf_all, x0 = dream_sample_tokens(logits[flip], temperature, top_p, top_k, "origin", generator)
            gen[flip] = x0
            chosen_rows = [flip[r].nonzero().squeeze(-1) for r in range(B)]
            conf_full = torch.full(masked.shape, float("nan"), device=device)
            conf_full[flip] = conf_all.float()
        else:
            conf, x0 = dream_sample_tokens(logits[masked], temperature, top_p, top_k, alg, generator)
            conf_full = torch.full(masked.shape, -torch.inf, device=device)
            conf_full[masked] = conf.float()
            x0_full = torch.full_like(gen, mask_id)
            x0_full[masked] = x0
            n_masked = masked.sum(-1)  # per row (equal across rows for this sampler)
            chosen_rows = []
            for r in range(B):
                n = int(n_masked[r]) if last else int(n_masked[r].item() * (1 - s / t))
                if n == 0:
                    chosen_rows.append(torch.empty(0, dtype=torch.long, device=device))
                    continue
                if alg_temp:
                    w = (conf_full[r] / alg_temp).softmax(-1)
                    idx = torch.multinomial(w, n, replacement=False, generator=generator)
                else:
                    idx = conf_full[r].topk(n).indices
                gen[r, idx] = x0_full[r, idx]
                chosen_rows.append(idx)
        if records is not None:
            records.append(StepTrace(step=i, block=0, positions=[c.cpu() for c in chosen_rows],
                                     tokens=[gen[r, c].cpu() for r, c in enumerate(chosen_rows)],
                                     confidences=[conf_full[r, c].cpu() for r, c in enumerate(chosen_rows)],
                                     canvas=before.cpu()))
    return x, records


def _dream_official_step(model, x, attention_mask, Lp, mask_id, timesteps, i, steps, temperature, top_p, top_k,
                         alg, alg_temp, generator, records) -> None:
    """One step of Dream's `_sample` on the whole canvas, in place: [MASK] may be predicted (it commits
    nothing), the quota is int(batch-mean masked count * (1 - s/t)) in fp32 (all at the last step), and a
    row with fewer masked positions than that quota gets its -inf-ranked positions overwritten with [MASK],
    exactly as the official loop does."""
    B, T = x.shape
    masked = x == mask_id  # (B, T), row-major order below
    whole = bool(masked[:, :Lp].any())
    lo = 0 if whole else Lp
    logits = _dream_logits(model, x, attention_mask, Lp, whole)  # (B, T - lo, V), the model's dtype
    region_masked = masked[:, lo:]
    masked_logits = logits[region_masked]
    t, s = timesteps[i], timesteps[i + 1]
    before = x[:, Lp:].clone()
    if alg == "origin":
        p_transfer = 1 - s / t if i < steps - 1 else 1
        fill = torch.full((masked_logits.shape[0],), mask_id, dtype=torch.long, device=x.device)
        flip = torch.rand(fill.shape, device=x.device, generator=generator) < p_transfer
        conf, picked = dream_sample_tokens(masked_logits[flip], temperature, top_p, top_k, "origin", generator,
                                           official=True)
        fill[flip] = picked
        x[:, lo:][region_masked] = fill
        if records is not None:
            written = torch.zeros_like(masked)
            written[:, lo:][region_masked] = flip
            score = torch.full(x.shape, float("nan"), device=x.device)
            score[written] = conf.float()
            chosen = [written[r].nonzero().squeeze(-1) for r in range(B)]
            records.append(_step_record(i, 0, _with(x, before, Lp), x, score, chosen, Lp, 0))
        return
    conf, picked = dream_sample_tokens(masked_logits, temperature, top_p, top_k, alg, generator, official=True)
    mean_masked = masked.sum() / B  # a float tensor, averaged over the batch as the official loop does
    n = int(mean_masked * (1 - s / t)) if i < steps - 1 else int(mean_masked)
    if n <= 0:
        return
    score = torch.full(x.shape, -torch.inf, dtype=logits.dtype, device=x.device)
    score[:, lo:][region_masked] = conf
    if alg_temp:
        chosen = torch.multinomial((score / alg_temp).softmax(-1), n, generator=generator)
    else:
        chosen = score.topk(n).indices
    candidate = torch.full_like(x, mask_id)
    candidate[:, lo:][region_masked] = picked
    rows = torch.arange(B, device=x.device)[:, None].expand_as(chosen)
    x[rows, chosen] = candidate[rows, chosen]
    if records is not None:
        records.append(_step_record(i, 0, _with(x, before, Lp), x, score, list(chosen), Lp, 0))


def _with(x, answer_before, Lp):
    """The canvas with its answer region as it was before the step (what a trace records)."""
    canvas = x.clone()
    canvas[:, Lp:] = answer_before
    return canvas


# --------------------------------------------------------------------------------------------------
# text in, text out


def encode_prompts(tok, prompts: Sequence[str], chat_template: bool = False, device="cpu"):
    """Left-padded (input_ids, attention_mask); applies the chat template when asked (Instruct models)."""
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of strings, not a single string")
    if chat_template:
        prompts = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                           tokenize=False) for p in prompts]
    enc = tok(list(prompts), return_tensors="pt", padding=True, padding_side="left",
              add_special_tokens=not chat_template)
    return enc["input_ids"].to(device), enc["attention_mask"].to(device)


def _decode(tok, ids: torch.Tensor, stop_at_eos: bool) -> list:
    texts = []
    eos = tok.eos_token_id
    for row in ids.tolist():
        if stop_at_eos and eos is not None and eos in row:
            row = row[: row.index(eos)]
        texts.append(tok.decode(row, skip_special_tokens=True))
    return texts


def generate(model, tok, prompts: Sequence[str], *, steps: int = 64, gen_length: int = 64,
             block_length: Optional[int] = None, temperature: float = 0.0, cfg_scale: float = 0.0,
             remasking: str = "low_confidence", alg: str = "entropy", alg_temp: Optional[float] = None,
             top_p: Optional[float] = None, top_k: Optional[int] = None, seed: int = 0, trace: bool = False,
             batch_size: Optional[int] = None, chat_template: bool = False, stop_at_eos: bool = True,
             logits_eos_inf: bool = False, confidence_eos_eot_inf: bool = False,
             eot_token_id: Optional[int] = None, sampler_mode: str = "guarded") -> Generation:
    """Generate answers for a batch of prompts with the model family's sampler.

    LLaDA uses steps / gen_length / block_length / remasking / cfg_scale; Dream uses steps / gen_length /
    alg / alg_temp / top_p / top_k (block_length must be None or gen_length: Dream has no blocks; top_k=None,
    no filter, is what Dream's evaluation harness passes). sampler_mode: "guarded" (never commit [MASK],
    the kit default) or "official" (token-identical to the official samplers; the paper presets use it)."""
    check_sampler_mode(sampler_mode)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model={model!r} must be a LLaDA or Dream model (e.g. from dllmq.load_model), not a "
                        f"{type(model).__name__}")
    family = family_of(model)
    if family not in ("llada", "dream"):
        raise ValueError(f"model family {family!r} is autoregressive; use model.generate for it")
    if not callable(tok) or not callable(getattr(tok, "decode", None)):
        raise TypeError(f"tok={tok!r} must be the model's tokenizer (e.g. from dllmq.load_model)")
    prompts = _check_prompts(prompts)
    if batch_size is not None and not _is_int(batch_size):
        raise TypeError(f"batch_size={batch_size!r} must be a positive int or None (all prompts in one batch)")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1 or None (all prompts in one batch)")
    if not _is_int(seed):
        raise TypeError(f"seed={seed!r} must be an int")
    for name, flag in (("trace", trace), ("chat_template", chat_template), ("stop_at_eos", stop_at_eos),
                       ("logits_eos_inf", logits_eos_inf), ("confidence_eos_eot_inf", confidence_eos_eot_inf)):
        _check_flag(name, flag)
    if eot_token_id is not None and not _is_int(eot_token_id):
        raise TypeError(f"eot_token_id={eot_token_id!r} must be an int token id or None")
    block_length = gen_length if block_length is None else block_length
    if family == "dream" and block_length != gen_length:
        raise ValueError(f"block_length={block_length}: Dream's sampler has no blocks; leave it None")
    if family == "llada":  # every argument is checked before the first prompt is encoded
        _check_llada_args(steps, gen_length, block_length, temperature, cfg_scale, remasking)
    else:
        _check_dream_args(steps, gen_length, temperature, alg, top_k, top_p, alg_temp)
    check_mask_id(model)
    limit = max_sequence_length(model)
    if limit is not None and gen_length > limit:
        raise ValueError(f"gen_length={gen_length} exceeds the model's maximum sequence length of {limit} tokens "
                         "(prompt + answer)")
    if chat_template and getattr(tok, "chat_template", None) is None:
        raise ValueError("chat_template=True, but the tokenizer has no chat template (tok.chat_template is None); "
                         "use chat_template=False (a Base model)")
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    size = batch_size or max(1, len(prompts))
    texts, ids, seqs, traces, prompt_len = [], [], [], [], 0
    for lo in range(0, len(prompts), size):
        input_ids, attention_mask = encode_prompts(tok, prompts[lo:lo + size], chat_template, device)
        _check_encoded(input_ids, attention_mask, lo, gen_length, limit, family)
        if family == "llada":
            x, rec = llada_sample(model, input_ids, attention_mask, steps=steps, gen_length=gen_length,
                                  block_length=block_length, temperature=temperature, cfg_scale=cfg_scale,
                                  remasking=remasking, eos_id=tok.eos_token_id, eot_id=eot_token_id,
                                  logits_eos_inf=logits_eos_inf, confidence_eos_eot_inf=confidence_eos_eot_inf,
                                  generator=generator, trace=trace, sampler_mode=sampler_mode)
        else:
            x, rec = dream_sample(model, input_ids, attention_mask, steps=steps, gen_length=gen_length,
                                  temperature=temperature, top_p=top_p, top_k=top_k, alg=alg,
                                  alg_temp=alg_temp, generator=generator, trace=trace, sampler_mode=sampler_mode)
        answer = x[:, input_ids.shape[1]:].cpu()
        texts += _decode(tok, answer, stop_at_eos)
        ids.append(answer)
        seqs.append(x.cpu())
        prompt_len = input_ids.shape[1]
        if rec is not None:
            traces.append(rec)
    merged = _merge_traces(traces) if trace else None
    sequences = seqs[0] if len(seqs) == 1 else None  # prompt lengths differ across chunks
    settings = dict(family=family, steps=steps, gen_length=gen_length, block_length=block_length,
                    temperature=temperature, cfg_scale=cfg_scale, remasking=remasking, alg=alg, top_p=top_p,
                    top_k=top_k, seed=seed, sampler_mode=sampler_mode)
    return Generation(text=texts, ids=torch.cat(ids), sequences=sequences, prompt_length=prompt_len,
                      trace=merged, settings=settings)


def _check_prompts(prompts) -> list:
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of strings, not a single string")
    if prompts is None or not hasattr(prompts, "__iter__"):
        raise TypeError(f"prompts={prompts!r} must be a list of strings")
    prompts = list(prompts)
    if not prompts:
        raise ValueError("prompts is empty: give at least one prompt string")
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise TypeError(f"prompts[{i}]={prompt!r} must be a str")
    return prompts


def _check_encoded(input_ids, attention_mask, offset: int, gen_length: int, limit: Optional[int], family: str):
    """Prompt + answer within the model's maximum length; Dream needs at least one prompt token per row."""
    total = input_ids.shape[1] + gen_length
    if limit is not None and total > limit:
        longest = offset + int(attention_mask.sum(-1).argmax())
        raise ValueError(f"prompts[{longest}] has {input_ids.shape[1]} tokens; with gen_length={gen_length} that is "
                         f"{total}, more than the model's maximum sequence length {limit}: shorten the prompt or "
                         "lower gen_length")
    if family == "dream":
        for row, n in enumerate(attention_mask.sum(-1).tolist()):
            if n == 0:
                raise ValueError(f"prompts[{offset + row}] is empty after tokenization: Dream predicts each token "
                                 "from the one before it, so a prompt needs at least one token (e.g. BOS)")


def _merge_traces(chunks: list) -> list:
    """Concatenate per-chunk traces row-wise (every chunk runs the same number of steps)."""
    if len(chunks) == 1:
        return chunks[0]
    merged = []
    for steps in zip(*chunks):
        merged.append(StepTrace(step=steps[0].step, block=steps[0].block,
                                positions=[p for s in steps for p in s.positions],
                                tokens=[t for s in steps for t in s.tokens],
                                confidences=[c for s in steps for c in s.confidences],
                                canvas=torch.cat([s.canvas for s in steps])))
    return merged
