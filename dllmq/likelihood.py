"""Monte-Carlo masked-diffusion log-likelihood (the ELBO LLaDA and Dream use for multiple-choice tasks).

For a continuation y of length L after a context c (LLaDA, arXiv 2502.09992, Eq. 6 / `get_log_likelihood.py`):

    log p(y | c)  >=  E_{k ~ U{1..L}} E_{S ⊂ y, |S| = k} [ (L / k) * sum_{i in S} log p_theta(y_i | c, y with S masked) ]

Each Monte-Carlo row masks k continuation tokens (k stratified across a group of rows: one uniform draw,
then evenly spread counts, wrapped into 1..L) and scores the masked tokens, weighted by 1/(k/L). The
context is never masked. With L = 1 the only mask is the whole continuation and the estimate is exactly
log softmax -- one forward, no sampling.

Dream's variant (`eval/eval.py`, nll_type "mc"): stratified t_i = (u + i/b) mod 1, mask ratio
p = (1 - eps) t + eps, each continuation token masked independently with probability p, logits shifted by
one position, weight 1/p.

What is scored (`definition`, see docs/fidelity.md):
  "official"  each family's own harness (the default). LLaDA: the continuation alone. Dream: BOS + context
              as context (string API), and the continuation followed by EOS, the EOS never masked -- i.e.
              log p(y | c, EOS visible after y), as Dream's harness (the paper's Table 5) scores it.
  "bare"      the continuation alone for either family, every continuation token maskable (LLaDA's
              definition; what dllmq scored for Dream before).

Masks come from a generator seeded by (seed, token ids): two models scored with the same seed see the
same masks (common random numbers), so FP-vs-quantized differences have low variance.
"""
from __future__ import annotations

import itertools
import math
import numbers
import zlib
from fractions import Fraction
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from .models.layout import family_of

DEFINITIONS = ("official", "bare")


def check_definition(definition: Optional[str]) -> str:
    """The likelihood definition to use: None means "official"; anything else must be one of DEFINITIONS."""
    definition = "official" if definition is None else definition
    if definition not in DEFINITIONS:
        raise ValueError(f"definition={definition!r} is unknown; allowed: {DEFINITIONS} "
                         "('official': each family's own harness, 'bare': the continuation alone)")
    return definition


def appends_eos(family: str, definition: Optional[str]) -> bool:
    """True where the continuation is scored with a visible EOS after it (Dream's official definition)."""
    return family == "dream" and check_definition(definition) == "official"


def _request_generator(seed: int, ctx: Sequence[int], cont: Sequence[int]) -> torch.Generator:
    key = zlib.crc32(bytes(str((list(ctx), list(cont))), "utf8"))
    return torch.Generator().manual_seed((seed * 1_000_003 + key) % (2**63))


def llada_mask_counts(L: int, n: int, g: torch.Generator) -> torch.Tensor:
    """n stratified mask counts in 1..L: k ~ U{1..L}, then round(linspace(k, k + (n-1) L/n)), wrapped."""
    k = int(torch.randint(1, L + 1, (), generator=g))
    counts = torch.round(torch.linspace(float(k), k + (n - 1) * (L / n), n)).long()
    return (counts - 1) % L + 1


def llada_masks(L: int, n_samples: int, group: int, g: torch.Generator) -> tuple:
    """(n_samples, L) boolean masks over the continuation and their ratios p = k / L."""
    rows, ratios = [], []
    for _ in range(n_samples // group):
        for k in llada_mask_counts(L, group, g).tolist():
            m = torch.zeros(L, dtype=torch.bool)
            m[torch.randperm(L, generator=g)[:k]] = True
            rows.append(m)
            ratios.append(k / L)
    return torch.stack(rows), torch.tensor(ratios)


def dream_masks(L: int, n_samples: int, group: int, g: torch.Generator, eps: float = 1e-3) -> tuple:
    """Dream's masks: stratified t, p = (1-eps) t + eps, tokens masked independently with probability p."""
    rows, ratios = [], []
    for _ in range(n_samples // group):
        u = float(torch.rand((), generator=g))
        t = (u + torch.arange(group) / group) % 1.0
        p = (1 - eps) * t + eps
        rows.append(torch.rand(group, L, generator=g) < p[:, None])
        ratios.append(p)
    return torch.cat(rows), torch.cat(ratios)


@torch.no_grad()
def _score_rows(model, rows: list, family: str, mask_id: int, cfg_scale: float, pad_id: int) -> list:
    """rows: (ctx_ids, cont_ids, cont_mask, ratio). Returns the weighted masked CE sum per row."""
    device = next(model.parameters()).device
    T = max(len(c) + len(y) for c, y, _, _ in rows)
    x = torch.full((len(rows), T), pad_id, dtype=torch.long)
    am = torch.zeros((len(rows), T), dtype=torch.long)
    target = torch.full((len(rows), T), -100, dtype=torch.long)  # CE target at masked positions only
    weight = torch.zeros((len(rows), T))
    prompt = torch.zeros((len(rows), T), dtype=torch.bool)
    for r, (ctx, cont, mask, ratio) in enumerate(rows):
        n = len(ctx) + len(cont)
        seq = torch.tensor(list(ctx) + list(cont))
        pos = torch.arange(len(ctx), n)[mask]
        x[r, :n] = seq
        x[r, pos] = mask_id
        am[r, :n] = 1
        target[r, pos] = seq[pos]
        weight[r, pos] = 1.0 / float(ratio)
        prompt[r, :len(ctx)] = True
    x, am = x.to(device), am.to(device)
    padded = bool((am == 0).any())
    if cfg_scale > 0:
        uncond = x.masked_fill(prompt.to(device), mask_id)
        both_am = torch.cat([am, am]) if padded else None
        logits = model(torch.cat([x, uncond]), attention_mask=both_am).logits.float()
        cond, unc = logits.chunk(2)
        logits = unc + (cfg_scale + 1) * (cond - unc)
    else:
        logits = model(x, attention_mask=am if padded else None).logits.float()  # (R, T, V)
    if family == "dream":  # the output at j-1 predicts token j
        logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
    ce = F.cross_entropy(logits.transpose(1, 2), target.to(device), ignore_index=-100, reduction="none")  # (R, T)
    return (ce.cpu() * weight).sum(-1).tolist()


def mc_loglikelihood(model, contexts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]], *,
                     mc_samples: int = 128, batch_size: int = 32, group_size: Optional[int] = None, seed: int = 0,
                     cfg_scale: float = 0.0, mask_id: Optional[int] = None, pad_id: int = 0,
                     eps: float = 1e-3, definition: Optional[str] = None, eos_id: Optional[int] = None,
                     progress: bool = False) -> list:
    """Token-level estimator: returns [(log-likelihood estimate, standard error)] per request.

    batch_size rows (from any requests) go through the model per forward; group_size (default
    min(batch_size, mc_samples), as the reference) is the stratification group and must divide mc_samples.
    definition: "official" (default) or "bare" (module docstring); Dream's official definition appends
    eos_id (default: the model config's eos_token_id) after each continuation and never masks it. The
    masks depend only on (seed, context, continuation), not on the model: common random numbers."""
    family = _check_model(model)
    definition = check_definition(definition)
    with_eos = appends_eos(family, definition)
    if with_eos:
        eos_id = model.config.eos_token_id if eos_id is None else eos_id
        if isinstance(eos_id, (list, tuple)):
            eos_id = eos_id[0]
        if eos_id is None:
            raise ValueError("eos_id=None: Dream's official likelihood scores the continuation followed by EOS; "
                             "pass eos_id= or use definition='bare'")
    for name, ids in (("contexts", contexts), ("continuations", continuations)):
        if isinstance(ids, (str, bytes)) or not hasattr(ids, "__len__"):
            raise TypeError(f"{name}={ids!r} must be a list of token-id lists (one per request)")
    if len(contexts) != len(continuations):
        raise ValueError(f"contexts ({len(contexts)}) and continuations ({len(continuations)}) differ in length")
    _check_counts(mc_samples=mc_samples, batch_size=batch_size)
    if group_size is not None:
        _check_counts(group_size=group_size)
    _check_int("seed", seed)
    _check_cfg(cfg_scale)
    group = group_size or min(batch_size, mc_samples)
    if mc_samples % group:
        raise ValueError(f"mc_samples={mc_samples} must be a multiple of group_size={group}")
    from .decoding import check_mask_id, max_sequence_length, vocab_size

    mask_id = check_mask_id(model, mask_id)
    vocab, limit = vocab_size(model), max_sequence_length(model)
    rows, owner = [], []
    for i, (ctx, cont) in enumerate(zip(contexts, continuations)):
        ctx, cont = _token_ids(ctx, f"contexts[{i}]", vocab), _token_ids(cont, f"continuations[{i}]", vocab)
        if not cont:
            raise ValueError(f"continuation {i} is empty")
        if family == "dream" and not ctx:
            raise ValueError(f"context {i} is empty: Dream's shifted logits need at least one context token (e.g. BOS)")
        total = len(ctx) + len(cont) + int(with_eos)
        if limit is not None and total > limit:
            raise ValueError(f"request {i}: {len(ctx)} context + {len(cont)} continuation tokens"
                             f"{' + EOS' if with_eos else ''} = {total}, more than the model's maximum sequence "
                             f"length {limit}; shorten the context")
        L = len(cont)
        if L == 1:  # exact: the single token is always masked, ratio 1
            masks, ratios = torch.ones(1, 1, dtype=torch.bool), torch.ones(1)
        else:
            g = _request_generator(seed, ctx, cont)
            make = llada_masks if family == "llada" else dream_masks
            masks, ratios = make(L, mc_samples, group, g) if family == "llada" else make(L, mc_samples, group, g, eps)
        if with_eos:  # EOS after the continuation: always visible (never masked), never scored
            cont = cont + [int(eos_id)]
            masks = torch.cat([masks, torch.zeros(len(masks), 1, dtype=torch.bool)], dim=1)
        for m, p in zip(masks, ratios.tolist()):
            rows.append((ctx, cont, m, p))
            owner.append(i)
    losses = []
    chunks = range(0, len(rows), batch_size)
    if progress:
        from tqdm.auto import tqdm
        chunks = tqdm(chunks, desc="MC likelihood", unit="batch")
    for lo in chunks:
        losses += _score_rows(model, rows[lo:lo + batch_size], family, mask_id, cfg_scale, pad_id)
    per_request = [[] for _ in contexts]
    for i, loss in zip(owner, losses):
        per_request[i].append(-loss)
    out = []
    for vals in per_request:
        v = torch.tensor(vals, dtype=torch.float64)
        se = float(v.std(unbiased=True) / math.sqrt(len(v))) if len(v) > 1 else 0.0
        out.append((float(v.mean()), se))
    return out


def _check_model(model) -> str:
    """The family of a masked-diffusion model; anything else is a clear error."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model={model!r} must be a LLaDA or Dream model (e.g. from dllmq.load_model), not a "
                        f"{type(model).__name__}")
    family = family_of(model)
    if family not in ("llada", "dream"):
        raise ValueError(f"model family {family!r} is autoregressive; score it with its causal log-probs")
    return family


def _check_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}={value!r} must be an int")


def _check_counts(**counts) -> None:
    for name, value in counts.items():
        _check_int(name, value)
        if value < 1:
            raise ValueError(f"{name}={value} must be >= 1")


def _check_cfg(cfg_scale) -> None:
    if isinstance(cfg_scale, bool) or not isinstance(cfg_scale, (int, float)):
        raise TypeError(f"cfg_scale={cfg_scale!r} must be a number >= 0 (0 = no classifier-free guidance)")
    if not math.isfinite(cfg_scale) or cfg_scale < 0:
        raise ValueError(f"cfg_scale={cfg_scale!r} must be a finite number >= 0 (0 = no classifier-free guidance)")


def _token_ids(ids, where: str, vocab: int) -> list:
    """A list of int token ids inside the vocabulary."""
    if torch.is_tensor(ids):
        if ids.is_floating_point() or ids.dtype == torch.bool:
            raise TypeError(f"{where} must hold int token ids, got a {ids.dtype} tensor")
        ids = ids.tolist()
    if isinstance(ids, (str, bytes)) or not hasattr(ids, "__iter__"):
        raise TypeError(f"{where}={ids!r} must be a list of int token ids")
    ids = list(ids)
    for t in ids:
        if isinstance(t, bool) or not isinstance(t, numbers.Integral):
            raise TypeError(f"{where} must hold int token ids, got {t!r}")
        if not 0 <= t < vocab:
            raise ValueError(f"{where} holds token id {t}, outside the model's vocabulary of {vocab} ids "
                             f"(0..{vocab - 1})")
    return [int(t) for t in ids]


def _check_pairs(pairs) -> list:
    """A non-empty list of (context, continuation) string pairs."""
    if isinstance(pairs, str) or pairs is None or not hasattr(pairs, "__iter__"):
        raise TypeError(f"pairs={pairs!r} must be a list of (context, continuation) string pairs")
    if isinstance(pairs, tuple) and len(pairs) == 2 and all(isinstance(p, str) for p in pairs):
        raise TypeError(f"pairs={pairs!r} is one pair: pairs must be a list of (context, continuation) pairs, "
                        f"e.g. [{pairs!r}]")
    pairs = list(pairs)
    if not pairs:
        raise ValueError("pairs is empty: give at least one (context, continuation) pair")
    for i, pair in enumerate(pairs):
        if isinstance(pair, str) or not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"pairs[{i}]={pair!r} must be a (context, continuation) pair of strings")
        for name, text in zip(("context", "continuation"), pair):
            if not isinstance(text, str):
                raise TypeError(f"the {name} of pairs[{i}] is {text!r}; it must be a str")
        if not pair[1]:
            raise ValueError(f"the continuation of pairs[{i}] is empty; there is nothing to score")
    return pairs


def encode_pair(tok, context: str, continuation: str, bos_id: Optional[int] = None) -> tuple:
    """Token ids of (context, continuation) as lm-eval splits them: trailing whitespace of the context moves
    to the continuation (as lm-eval's TemplateLM and the LLaDA/Dream harnesses do), and the continuation is
    what the joint encoding adds after the context. bos_id, if given, leads the context (once)."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
    whole = tok(context + continuation)["input_ids"]
    ctx = tok(context)["input_ids"]
    cont = whole[len(ctx):]
    if bos_id is not None and ctx[:1] != [bos_id]:
        ctx = [bos_id] + ctx
    return ctx, cont


def harness_pair(tok, family: str, context: str, continuation: str, definition: Optional[str] = None) -> tuple:
    """(context ids, continuation ids) as the family's harness builds them for `definition`: Dream's
    official harness puts BOS before every context (add_bos_token=true in its scripts); the EOS it appends
    to the continuation is added by `mc_loglikelihood`."""
    bos = tok.bos_token_id if appends_eos(family, definition) else None
    return encode_pair(tok, context, continuation, bos_id=bos)


def loglikelihood(model, tok, pairs: Sequence[tuple], *, mc_samples: int = 128, batch_size: int = 32,
                  seed: int = 0, cfg_scale: float = 0.0, definition: Optional[str] = None,
                  return_stderr: bool = False, progress: bool = False):
    """log p(continuation | context) for (context, continuation) string pairs, by the MC masked ELBO.

    definition: "official" (default; the family's own harness) or "bare" -- see the module docstring.
    Returns a list of floats, or of (value, stderr) with return_stderr=True."""
    family = _check_model(model)
    check_definition(definition)
    if not callable(tok):
        raise TypeError(f"tok={tok!r} must be the model's tokenizer (e.g. from dllmq.load_model)")
    for name, flag in (("return_stderr", return_stderr), ("progress", progress)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name}={flag!r} must be a bool")
    pairs = _check_pairs(pairs)
    encoded = [harness_pair(tok, family, c, y, definition) for c, y in pairs]
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    res = mc_loglikelihood(model, [c for c, _ in encoded], [y for _, y in encoded], mc_samples=mc_samples,
                           batch_size=batch_size, seed=seed, cfg_scale=cfg_scale, pad_id=pad,
                           definition=definition, eos_id=tok.eos_token_id, progress=progress)
    return res if return_stderr else [v for v, _ in res]


def subset_weight(family: str, k: int, L: int, eps: float = 1e-3) -> float:
    """Weight of one mask set S with |S| = k in the family's ELBO, E = sum_S weight(|S|) sum_{i in S} log p(y_i | ...).

    LLaDA (k ~ U{1..L}, then S uniform among sets of size k, weight L/k):  1 / (k * C(L, k)).
    Dream (p ~ U(eps, 1), each token masked with probability p, weight 1/p):
        1/(1 - eps) * integral_eps^1 p^(k-1) (1 - p)^(L-k) dp, expanded exactly in rationals."""
    if not 1 <= k <= L:
        raise ValueError(f"k={k} must lie in 1..L={L}")
    if family == "llada":
        return 1.0 / (k * math.comb(L, k))
    if family != "dream":
        raise ValueError(f"family={family!r} has no masked ELBO; allowed: 'llada', 'dream'")
    e = Fraction(eps)
    integral = sum(Fraction(math.comb(L - k, j) * (-1) ** j, k + j) * (1 - e ** (k + j)) for j in range(L - k + 1))
    return float(integral / (1 - e))


@torch.no_grad()
def exact_elbo(model, context: Sequence[int], continuation: Sequence[int], *, definition: Optional[str] = None,
               eos_id: Optional[int] = None, eps: float = 1e-3) -> float:
    """The family's ELBO computed exactly by enumerating every mask (2^L - 1 forwards; for L <= ~10).

    sum_S subset_weight(|S|) sum_{i in S} log p(y_i | c, y with S masked) -- the quantity `mc_loglikelihood`
    estimates with the same definition (Dream's official one: EOS visible after y); used by tests and the
    evaluation notebook."""
    family = family_of(model)
    context, cont = list(context), list(continuation)
    L = len(cont)
    if L == 0:
        raise ValueError("continuation is empty")
    tail = []
    if appends_eos(family, definition):
        eos_id = model.config.eos_token_id if eos_id is None else eos_id
        tail = [int(eos_id[0] if isinstance(eos_id, (list, tuple)) else eos_id)]
    total = 0.0
    for k in range(1, L + 1):
        rows = []
        for S in itertools.combinations(range(L), k):
            m = torch.zeros(L + len(tail), dtype=torch.bool)
            m[list(S)] = True
            rows.append((context, cont + tail, m, 1.0))  # ratio 1: plain CE sums, weighted below
        losses = _score_rows(model, rows, family, model.config.mask_token_id, 0.0, 0)
        total -= subset_weight(family, k, L, eps) * sum(losses)
    return total
