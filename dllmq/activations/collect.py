"""Hook the inputs of a model's block Linears and stream their statistics.

1. Map the requested roles onto *input sites* through the Layout: q/k/v read one tensor (the attention
   norm output) and gate/up read one tensor (the MLP norm output), so each is hooked once, on the first
   requested role of its group; `stats[layer, "k"]` then returns the shared site.
2. A forward pre-hook on the model records the batch's token ids and attention mask (padding is dropped,
   optional selectors keep e.g. only masked positions); a forward pre-hook on each site's Linear
   updates the streaming statistics with the selected token vectors.
3. Hooks are removed on exit, also when the forward raises.

The same recorder runs under any driver: `collect_activations` feeds data, the dLLM views run it during
generation with one set of statistics per model call (= per denoising step).
"""
from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Callable, Optional, Sequence

import torch
from tqdm.auto import tqdm

from ..models.layout import ROLE_GROUPS, ROLES, family_of, get_layout
from .result import ActivationStats
from .stats import SiteStats

Selector = Callable[[torch.Tensor, Optional[torch.Tensor]], torch.Tensor]  # (ids, mask) -> bool (B, T)


# ----------------------------------------------------------------------------------------------------
# data -> batches of (input_ids, attention_mask)


def iter_batches(data, tok=None, batch_size: int = 8, max_length: Optional[int] = None):
    """Yield (input_ids (B, T), attention_mask (B, T) or None) from the supported data forms:
    a LongTensor (n, T) or (T,); a list of strings (needs `tok`); a dict/BatchEncoding with input_ids
    (and attention_mask); or an iterable of such batches (tensors, dicts or (ids, mask) tuples)."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
    if isinstance(data, str):
        raise TypeError("data is a single string; pass a list of strings (with tok=...)")
    if isinstance(data, torch.Tensor) or isinstance(data, Mapping):
        ids, mask = _as_batch(data)
        for lo in range(0, ids.shape[0], batch_size):
            yield ids[lo:lo + batch_size], None if mask is None else mask[lo:lo + batch_size]
        return
    if isinstance(data, (list, tuple)) and data and all(isinstance(d, str) for d in data):
        if tok is None:
            raise ValueError("data is a list of strings: pass the tokenizer as tok=...")
        for lo in range(0, len(data), batch_size):
            enc = tok(list(data[lo:lo + batch_size]), return_tensors="pt", padding=True,
                      truncation=max_length is not None, max_length=max_length)
            yield enc["input_ids"], enc.get("attention_mask")
        return
    if isinstance(data, Iterable):
        n = 0
        for batch in data:
            n += 1
            yield _as_batch(batch)
        if n == 0:
            raise ValueError("data is empty")
        return
    raise TypeError(f"data of type {type(data).__name__} is not supported; allowed: LongTensor (n, T), "
                    "list of strings with tok=..., dict with input_ids, or an iterable of batches")


def _as_batch(batch):
    if isinstance(batch, Mapping):
        if "input_ids" not in batch:
            raise ValueError(f"a dict batch needs 'input_ids'; got keys {sorted(batch)}")
        ids, mask = batch["input_ids"], batch.get("attention_mask")
    elif isinstance(batch, (tuple, list)) and len(batch) == 2 and isinstance(batch[0], torch.Tensor):
        ids, mask = batch
    elif isinstance(batch, torch.Tensor):
        ids, mask = batch, None
    else:
        raise TypeError(f"a batch must be a LongTensor, a dict with input_ids or an (ids, mask) tuple; "
                        f"got {type(batch).__name__}")
    ids = torch.as_tensor(ids)
    if ids.dim() == 1:
        ids = ids[None]
        mask = None if mask is None else torch.as_tensor(mask)[None]
    if ids.dim() != 2 or ids.dtype not in (torch.long, torch.int32, torch.int64):
        raise ValueError(f"input_ids must be an integer tensor (n, T); got {tuple(ids.shape)} {ids.dtype}")
    if mask is not None and tuple(mask.shape) != tuple(ids.shape):
        raise ValueError(f"attention_mask shape {tuple(mask.shape)} != input_ids shape {tuple(ids.shape)}")
    return ids.long(), mask


def forward_kwargs(model) -> dict:
    """Keyword arguments that skip most of the LM head (only the statistics of the blocks are needed)."""
    params = inspect.signature(model.forward).parameters
    if "logits_slice" in params:
        return {"logits_slice": (0, 1)}
    if "logits_to_keep" in params:
        return {"logits_to_keep": 1}
    return {}


# ----------------------------------------------------------------------------------------------------
# sites and the recorder


def plan_sites(model, roles: Sequence[str] = ROLES, layers=None) -> tuple:
    """(layout, {(layer, primary role): roles sharing its input}) for the requested roles and layers."""
    if isinstance(roles, str):
        roles = (roles,)
    bad = [r for r in roles if r not in ROLES]
    if bad or not roles:
        raise ValueError(f"roles={tuple(roles)!r} invalid; allowed: {ROLES}")
    layout = get_layout(model)
    n = len(layout.blocks)
    if layers is None:
        layers = list(range(n))
    elif isinstance(layers, int):
        layers = [layers]
    layers = sorted({int(i) + n if int(i) < 0 else int(i) for i in layers})
    if not layers or layers[0] < 0 or layers[-1] >= n:
        raise ValueError(f"layers={layers!r} out of range; the model has {n} blocks (0..{n - 1}, negatives count back)")
    sites = {}
    for layer in layers:
        for group in ROLE_GROUPS:
            chosen = tuple(r for r in group if r in roles)
            if chosen:
                sites[(layer, chosen[0])] = chosen
    return layout, sites


class ActivationRecorder:
    """Context manager that keeps streaming statistics of the chosen Linear inputs.

    groups: name -> selector(input_ids, attention_mask) -> bool (B, T) (None = every real token); each
    group gets its own statistics. per_call=True starts fresh statistics at every model call (kept for
    calls whose index is a multiple of `every`)."""

    def __init__(self, model, roles: Sequence[str] = ROLES, layers=None, groups: Optional[dict] = None,
                 per_call: bool = False, every: int = 1, topk: int = 32, hist_bins: int = 256,
                 hist_range: Optional[tuple] = None, model_name: str = ""):
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every={every!r} must be a positive integer")
        self.model = model
        self.layout, self.site_roles = plan_sites(model, roles, layers)
        self.groups = dict(groups or {"all": None})
        if not self.groups:
            raise ValueError("groups must name at least one selection")
        self.per_call, self.every = per_call, every
        self.stat_kw = dict(topk=topk, hist_bins=hist_bins, hist_range=hist_range)
        SiteStats(0, ("q",), **self.stat_kw)  # validate the statistic options early
        self.model_name = model_name or getattr(getattr(model, "config", None), "_name_or_path", "") or ""
        self.calls = []  # per_call: list of (call index, {group: ActivationStats})
        self._current = None if per_call else self._new_set()
        self._handles, self._ctx, self._n_calls, self._samples = [], None, 0, 0

    def _new_set(self) -> dict:
        aliases = {(layer, r): (layer, roles[0]) for (layer, _), roles in self.site_roles.items() for r in roles}
        out = {}
        for name in self.groups:
            sites = {key: SiteStats(key[0], roles, **self.stat_kw) for key, roles in self.site_roles.items()}
            out[name] = ActivationStats(sites=sites, aliases=dict(aliases), n_layers=len(self.layout.blocks),
                                        family=self.layout.family.name, model_name=self.model_name, group=name)
        return out

    # 1. model pre-hook: which tokens of this call go to which group
    def _on_model(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
        call = self._n_calls
        self._n_calls += 1
        if self.per_call:
            if call % self.every:
                self._ctx = None
                return
            self._current = self._new_set()
            self.calls.append((call, self._current))
        if ids is None:
            self._ctx = {"ids": None, "mask": mask}
            return
        B, T = ids.shape
        valid = torch.ones(B, T, dtype=torch.bool, device=ids.device) if mask is None else mask.bool()
        select = {}
        for name, fn in self.groups.items():
            keep = valid if fn is None else valid & fn(ids, mask).to(valid.device).bool()
            rows, pos = keep.nonzero(as_tuple=True)
            select[name] = (rows * T + pos, rows + self._samples, pos, ids[rows, pos], bool(keep.all()))
        self._samples += B
        self._ctx = {"ids": ids, "select": select}

    # 2. Linear pre-hook: update each group's site with its tokens
    def _on_site(self, key):
        def hook(module, args):
            ctx = self._ctx
            if ctx is None:
                return
            x = args[0].detach()
            if ctx["ids"] is None:  # called without ids (e.g. inputs_embeds): every token, ids unknown
                ctx = self._ctx_from_shape(x)
            C = x.shape[-1]
            flat_x = x.reshape(-1, C)  # (B*T, C)
            for name, (flat, sample, pos, tid, everything) in ctx["select"].items():
                xs = flat_x if everything else flat_x[flat]
                self._current[name].sites[key].update(xs, sample, pos, tid)
        return hook

    def _ctx_from_shape(self, x):
        """The model was called without input_ids: keep every real token in every group, ids unknown (-1)."""
        B, T = x.shape[:2]
        mask = self._ctx.get("mask")
        valid = torch.ones(B, T, dtype=torch.bool, device=x.device) if mask is None else mask.bool()
        rows, pos = valid.nonzero(as_tuple=True)
        ids = torch.full((B, T), -1, dtype=torch.long, device=x.device)
        sel = (rows * T + pos, rows + self._samples, pos, ids[rows, pos], bool(valid.all()))
        self._samples += B
        self._ctx = {"ids": ids, "select": {name: sel for name in self.groups}}
        return self._ctx

    def __enter__(self) -> "ActivationRecorder":
        try:
            self._handles.append(self.model.register_forward_pre_hook(self._on_model, with_kwargs=True))
            for key in self.site_roles:
                module = self.layout.blocks[key[0]].get(key[1])
                self._handles.append(module.register_forward_pre_hook(self._on_site(key)))
        except Exception:
            self.remove()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._ctx = None

    def result(self) -> dict:
        """{group: ActivationStats} (per_call=False)."""
        if self.per_call:
            raise ValueError("per_call=True: read recorder.calls")
        return {name: s.cpu() for name, s in self._current.items()}


# ----------------------------------------------------------------------------------------------------
# drivers


@torch.no_grad()
def collect_groups(model, data, groups: dict, roles: Sequence[str] = ROLES, layers=None, *, tok=None,
                   batch_size: int = 8, max_length: Optional[int] = None, topk: int = 32, hist_bins: int = 256,
                   hist_range: Optional[tuple] = None, progress: bool = True, desc: str = "activations",
                   model_name: str = "") -> dict:
    """Like `collect_activations`, with one ActivationStats per token group (name -> selector)."""
    family_of(model)  # clear error for unsupported models before any hook
    rec = ActivationRecorder(model, roles, layers, groups=groups, topk=topk, hist_bins=hist_bins,
                             hist_range=hist_range, model_name=model_name)
    device = next(model.parameters()).device
    extra = forward_kwargs(model)
    n_seen = 0
    with rec:
        for ids, mask in tqdm(iter_batches(data, tok, batch_size, max_length), desc=desc, disable=not progress):
            model(ids.to(device), attention_mask=None if mask is None else mask.to(device), **extra)
            n_seen += ids.shape[0]
    out = rec.result()
    for stats in out.values():
        stats.meta.update(n_samples=n_seen, batch_size=batch_size)
    return out


def collect_activations(model, data, roles: Sequence[str] = ROLES, layers=None, *, tok=None, batch_size: int = 8,
                        max_length: Optional[int] = None, topk: int = 32, hist_bins: int = 256,
                        hist_range: Optional[tuple] = None, select: Optional[Selector] = None,
                        progress: bool = True, model_name: str = "") -> ActivationStats:
    """Streaming statistics of the input of every chosen block Linear over `data`.

    data: LongTensor (n, T), a list of strings with tok=..., a dict with input_ids/attention_mask, or an
    iterable of batches; padding (attention_mask == 0) is excluded. roles: subset of
    ("q","k","v","o","gate","up","down"); q/k/v and gate/up share an input and are collected once.
    layers: None (all) or a list of block indices. select: optional (ids, mask) -> bool (B, T) keeping only
    some tokens (e.g. masked positions); model_name labels plots (default: config._name_or_path).
    Memory does not grow with the number of tokens."""
    out = collect_groups(model, data, {"all": select}, roles, layers, tok=tok, batch_size=batch_size,
                         max_length=max_length, topk=topk, hist_bins=hist_bins, hist_range=hist_range,
                         progress=progress, model_name=model_name)
    return out["all"]
