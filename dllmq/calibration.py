"""Calibration sets: the token windows a PTQ method looks at before quantizing.

    get_calibration(source, tok, n_samples, seq_len, seed=0, mask_ratio=None) -> LongTensor (n, seq_len)

Sources (the draw follows the reference code of each method):
    "wikitext2"  wikitext-2-raw-v1 train split joined with "\\n\\n", tokenized once, `n_samples` random
                 windows of `seq_len` tokens from random.Random(seed) (IST gptq / QuaRot / QDLM: 128 x 2048, seed 0)
    "c4"         the C4 shard en/c4-train.00000-of-01024: pick a random document longer than seq_len, then a
                 random window inside it (IST gptq `get_c4`)
    "pileval"    mit-han-lab/pile-val-backup validation, shuffled with seed 42, lines of at most seq_len tokens
                 concatenated and cut into seq_len blocks (llm-awq `get_calib_dataset`, 128 lines x 512);
                 as there, this usually yields *fewer* than n_samples blocks
    "text"       English prose shipped with the package (offline; a train part and a held-out part)
    "tiny"       the tiny model's training-corpus generator (dllmq.tiny), offline

Hub sources need `datasets` and network access; with HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set they raise
`OfflineError` naming the offline alternatives.

Mask-aware calibration (a dLLM sees masked inputs): mask_ratio=None keeps clean text (the paper's choice);
a float r masks each token with probability r; "uniform" draws t ~ U(0, 1) per sequence and masks with
probability (1 - eps) t + eps, eps = 1e-3, as LLaDA's forward process.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch

CALIB_SOURCES = ("wikitext2", "pileval", "c4", "text", "tiny")
HUB_SOURCES = ("wikitext2", "pileval", "c4")
OFFLINE_SOURCES = ("text", "tiny")
TEXT_PATH = Path(__file__).resolve().parent / "calibration_text.txt"
HELD_OUT_MARKER = "=== held-out ==="
MASK_EPS = 1e-3


@dataclass(frozen=True)
class CalibSpec:
    """One calibration set, as a recipe names it: `get_calibration(source, tok, n_samples, seq_len, seed, mask_ratio)`."""

    source: str = "wikitext2"
    n_samples: int = 128
    seq_len: int = 2048
    seed: int = 0
    mask_ratio: Union[None, float, str] = None  # None = clean text (as the paper); float or "uniform"

    def __post_init__(self):
        if self.source not in CALIB_SOURCES:
            raise ValueError(f"calib source={self.source!r} is unknown; allowed: {CALIB_SOURCES}")
        for name in ("n_samples", "seq_len", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "seed" else 1):
                raise ValueError(f"calib {name}={value!r} must be a {'non-negative' if name == 'seed' else 'positive'} int")
        m = self.mask_ratio
        if isinstance(m, int) and not isinstance(m, bool) and 0 < m <= 1:
            object.__setattr__(self, "mask_ratio", float(m))  # mask_ratio=1 means 1.0
            m = self.mask_ratio
        if not (m is None or m == "uniform" or (isinstance(m, float) and 0.0 < m <= 1.0)):
            raise ValueError(f"calib mask_ratio={m!r} is invalid; allowed: None, a float in (0, 1], 'uniform'")


class OfflineError(RuntimeError):
    """A hub calibration source was requested while offline (or the hub could not be reached)."""


def _offline() -> bool:
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _offline_error(source: str, cause: Optional[BaseException] = None) -> OfflineError:
    why = "offline mode is on (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)" if cause is None else f"loading failed: {cause}"
    return OfflineError(f"calibration source {source!r} needs the Hugging Face hub, but {why}; "
                        f"offline sources: 'text' (English prose shipped with dllmq), 'tiny' (the tiny model's corpus)")


def _load_hub(source: str, *args, **kwargs):
    if _offline():
        raise _offline_error(source)
    try:
        from datasets import load_dataset
        return load_dataset(*args, **kwargs)
    except Exception as err:  # network, missing files, auth: one clear message
        raise _offline_error(source, err) from err


def load_text(split: str = "train") -> str:
    """The bundled English prose: "train" (calibration) or "test" (held out, e.g. for perplexity)."""
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r} is unknown; allowed: 'train', 'test'")
    train, _, test = TEXT_PATH.read_text().partition(HELD_OUT_MARKER)
    return (train if split == "train" else test).strip()


def _encode(tok, text: str) -> torch.Tensor:
    """Token ids (1-D) of `text` without special tokens added."""
    ids = tok(text, return_tensors="pt", add_special_tokens=False).input_ids[0]
    return ids.long()


def random_windows(ids: torch.Tensor, n_samples: int, seq_len: int, seed: int, source: str = "text") -> torch.Tensor:
    """n_samples windows of seq_len tokens at random.Random(seed).randint(0, len - seq_len - 1) starts."""
    if ids.numel() <= seq_len + 1:
        raise ValueError(f"seq_len={seq_len} is too long for calibration source {source!r} "
                         f"({ids.numel()} tokens); use seq_len < {ids.numel() - 1}")
    rng = random.Random(seed)
    starts = [rng.randint(0, ids.numel() - seq_len - 1) for _ in range(n_samples)]
    return torch.stack([ids[i:i + seq_len] for i in starts])  # (n, seq_len)


def _wikitext2(tok, n_samples, seq_len, seed):
    data = _load_hub("wikitext2", "wikitext", "wikitext-2-raw-v1", split="train")
    return random_windows(_encode(tok, "\n\n".join(data["text"])), n_samples, seq_len, seed, "wikitext2")


def _c4(tok, n_samples, seq_len, seed):
    data = _load_hub("c4", "allenai/c4", data_files={"train": "en/c4-train.00000-of-01024.json.gz"}, split="train")
    rng = random.Random(seed)
    out = []
    for _ in range(n_samples):
        while True:  # a document longer than one window
            ids = _encode(tok, data[rng.randint(0, len(data) - 1)]["text"])
            if ids.numel() > seq_len:
                break
        i = rng.randint(0, ids.numel() - seq_len - 1)
        out.append(ids[i:i + seq_len])
    return torch.stack(out)


def _pileval(tok, n_samples, seq_len, seed):
    data = _load_hub("pileval", "mit-han-lab/pile-val-backup", split="validation").shuffle(seed=seed)
    lines = []
    for row in data:
        ids = _encode(tok, row["text"].strip())
        if ids.numel() == 0 or ids.numel() > seq_len:
            continue
        lines.append(ids)
        if len(lines) == n_samples:
            break
    stream = torch.cat(lines)
    n_blocks = stream.numel() // seq_len
    return stream[: n_blocks * seq_len].view(n_blocks, seq_len)  # (n_blocks, seq_len), n_blocks <= n_samples


def _tiny_text(n_chars: int, seed: int) -> str:
    """Text from the tiny model's corpus generator (`dllmq.tiny.corpus.sample_texts`), >= n_chars long."""
    try:
        from .tiny.corpus import sample_texts
    except ImportError as err:
        raise RuntimeError("calibration source 'tiny' needs the tiny corpus generator dllmq.tiny.corpus, which "
                           "is not available; use source='text' (bundled prose) instead") from err
    n = 64
    while True:
        text = "\n\n".join(sample_texts(n, seed=seed))
        if len(text) >= n_chars:
            return text
        n *= 2


def _tiny(tok, n_samples, seq_len, seed):
    # The char tokenizer has ~1 token per character; draw a stream a few windows longer than needed.
    text = _tiny_text(max(4 * seq_len, n_samples * seq_len // 4) + 2 * seq_len, seed)
    return random_windows(_encode(tok, text), n_samples, seq_len, seed, "tiny")


def _text(tok, n_samples, seq_len, seed):
    return random_windows(_encode(tok, load_text("train")), n_samples, seq_len, seed, "text")


_LOADERS = {"wikitext2": _wikitext2, "c4": _c4, "pileval": _pileval, "text": _text, "tiny": _tiny}


def mask_tokens(ids: torch.Tensor, mask_ratio: Union[float, str], mask_token_id: int, seed: int = 0) -> torch.Tensor:
    """Replace tokens by the mask id: each with probability mask_ratio, or t ~ U(0,1) per row ("uniform")."""
    g = torch.Generator().manual_seed(seed)
    n, T = ids.shape
    if mask_ratio == "uniform":
        t = torch.rand(n, 1, generator=g)
        p = (1 - MASK_EPS) * t + MASK_EPS  # (n, 1)
    elif isinstance(mask_ratio, (int, float)) and not isinstance(mask_ratio, bool) and 0 < mask_ratio <= 1:
        p = torch.full((n, 1), float(mask_ratio))
    else:
        raise ValueError(f"mask_ratio={mask_ratio!r} is invalid; allowed: None, a float in (0, 1], 'uniform'")
    masked = torch.rand(n, T, generator=g) < p
    return ids.masked_fill(masked, mask_token_id)


def get_calibration(source: str, tok, n_samples: int = 128, seq_len: int = 2048, seed: int = 0,
                    mask_ratio: Union[None, float, str] = None, mask_token_id: Optional[int] = None) -> torch.Tensor:
    """Calibration token ids (n, seq_len) from `source` (see the module docstring)."""
    spec = CalibSpec(source, n_samples, seq_len, seed, mask_ratio)  # every argument checked before any loading
    mask_ratio = spec.mask_ratio
    if not callable(tok):
        raise TypeError(f"tok={tok!r} must be the model's tokenizer (e.g. from dllmq.load_model): calibration text "
                        "is encoded with it")
    if mask_ratio is not None and mask_token_id is not None and (isinstance(mask_token_id, bool)
                                                                   or not isinstance(mask_token_id, int)):
        raise TypeError(f"mask_token_id={mask_token_id!r} must be an int token id")
    ids = _LOADERS[source](tok, n_samples, seq_len, seed)
    if mask_ratio is not None:
        mask_token_id = mask_token_id if mask_token_id is not None else getattr(tok, "mask_token_id", None)
        if mask_token_id is None:
            raise ValueError("mask_ratio needs a mask token: pass mask_token_id= (the tokenizer defines none)")
        ids = mask_tokens(ids, mask_ratio, mask_token_id, seed)
    return ids


def calibration_for(recipe, tok, **overrides) -> torch.Tensor:
    """The calibration set a Recipe (or a CalibSpec) asks for, fields overridable by keyword."""
    spec = recipe if isinstance(recipe, CalibSpec) else getattr(recipe, "calib", None)
    if not isinstance(spec, CalibSpec):
        raise TypeError(f"recipe={recipe!r} must be a Recipe or a CalibSpec")
    kw = dict(source=spec.source, n_samples=spec.n_samples, seq_len=spec.seq_len, seed=spec.seed,
              mask_ratio=spec.mask_ratio)
    unknown = sorted(set(overrides) - set(kw) - {"mask_token_id"})
    if unknown:
        raise TypeError(f"calibration_for() got unknown override {unknown[0]!r}; allowed: {sorted(kw)} and "
                        "mask_token_id")
    kw.update(overrides)
    return get_calibration(tok=tok, **kw)
