"""The procedural training corpus of the tiny dLLM (seeded, no downloads, TinyBench held out).

Rows come in two styles, as in LLaDA's recipe (arXiv 2502.09992):
  * SFT rows: prompt + answer + EOS padding; only the answer part (answer and its EOS) is ever masked.
    Some math rows carry 1-3 solved examples before the question (the few-shot layout).
  * Pretraining rows: several solved items joined by blank lines; every token may be masked.
Every prompt is drawn until it is *not* held out (`items.is_heldout`), so no TinyBench item is ever
trained on.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator, Optional

from . import arithmetic, coding, general
from .items import Item, is_heldout

TASKS = {"general": general, "math": arithmetic, "code": coding}
MIX = {"general": 0.25, "math": 0.45, "code": 0.3}  # share of rows per task
PRETRAIN_SHARE = 0.25
FEWSHOT_SHARE = 0.1  # of math rows
MAX_EOS_PAD = {"general": 2, "math": 18, "code": 14}  # answer region = answer + U{0..pad} EOS


def sample_item(task: str, rng: random.Random, heldout: bool = False) -> Item:
    """An item of `task` from the training side (default) or from the held-out side."""
    if task not in TASKS:
        raise ValueError(f"task={task!r} is unknown; allowed: {', '.join(TASKS)}")
    for _ in range(10_000):
        item = TASKS[task].sample(rng, with_tests=False) if task == "code" else TASKS[task].sample(rng)
        if is_heldout(item.prompt) == heldout:
            return item
    raise RuntimeError(f"could not draw a {'held-out' if heldout else 'training'} {task} item")


def _task(rng: random.Random, mix: Optional[dict] = None) -> str:
    mix = mix or MIX
    return rng.choices(list(mix), weights=list(mix.values()))[0]


@dataclass
class Row:
    """One training row as text: `prompt` is never masked; `answer` is; `n_eos` EOS tokens follow."""

    prompt: str
    answer: str
    n_eos: int
    task: str


def sample_row(rng: random.Random) -> Row:
    """Draw one training row (SFT or pretraining style)."""
    if rng.random() < PRETRAIN_SHARE:
        texts = [sample_item(_task(rng), rng).text for _ in range(rng.randint(2, 3))]
        return Row("", "\n\n".join(texts), 1, "pretrain")
    task = _task(rng)
    item = sample_item(task, rng)
    prompt = item.prompt
    if task == "math" and rng.random() < FEWSHOT_SHARE:
        shots = [sample_item("math", rng) for _ in range(rng.randint(1, 3))]
        prompt = arithmetic.fewshot_prompt(shots, item)
    return Row(prompt, item.answer, rng.randint(0, MAX_EOS_PAD[task]), task)


def rows(seed: int) -> Iterator[Row]:
    """The endless, seeded stream of training rows."""
    rng = random.Random(seed)
    while True:
        yield sample_row(rng)


def sample_texts(n: int, seed: int = 0, mix: Optional[dict] = None) -> list:
    """`n` plain training texts (prompt + answer), e.g. as calibration data for quantization."""
    rng = random.Random(seed)
    return [sample_item(_task(rng, mix), rng).text for _ in range(n)]
