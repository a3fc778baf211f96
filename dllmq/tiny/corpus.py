"""The procedural training corpus of the tiny dLLM (seeded, no downloads, TinyBench held out).

Rows come in two styles, as in LLaDA's recipe (arXiv 2502.09992):
  * SFT rows: prompt + answer + EOS padding; only the answer part (answer and its EOS) is ever masked.
    Some math rows carry 1-3 solved examples before the question (the few-shot layout).
  * Pretraining rows: several solved items joined by blank lines; every token may be masked.
    Optional "drill" rows are pretraining rows of bare worked equations ("17-9=8. 7*8=56. ..."), the
    arithmetic of many word problems packed densely (no question text, so no prompt at all).
  * Optional fact rows: worked equations of training problems, one after the other, in which only the
    results may be masked (" 9+24=[33.] 7*8=[56.] ..."). In an SFT row whose answer is masked at rate p,
    the operands of a step are all visible while its result is masked only about 1 time in 56 (six
    operand digits unmasked, the result masked: the integral of p (1 - p)^6); yet that is the situation
    at decoding, where the operands are committed first. Fact rows show it in every batch (tried, not
    in the shipped recipe: docs/DEVLOG.md, 2026-12-07).
  * Optional visible-work math rows: an SFT math row in which the worked operands stay visible and only
    the results and the final number may be masked (" 9+24=[33]. 33-5=[28].\n#### [28]"): the situation at
    decoding, inside a word problem.
The proportions are a `CorpusConfig` (recorded in each training run's recipe.json).
Every prompt is drawn until it is *not* held out (`items.is_heldout`), so no TinyBench item is ever
trained on.
"""
from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field
from typing import Iterator, Optional

from . import arithmetic, coding, general
from .items import Item, is_heldout

TASKS = {"general": general, "math": arithmetic, "code": coding}
MIX = {"general": 0.25, "math": 0.55, "code": 0.2}  # share of SFT rows per task (math needs the most)
PRETRAIN_SHARE = 0.15
FACT_SHARE = 0.0  # of all rows (4-8 equations each); 0 in the shipped recipe
FEWSHOT_SHARE = 0.1  # of math rows
VISIBLE_WORK_SHARE = 0.0  # of math SFT rows; 0 in the shipped recipe
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
    """One training row as text: `prompt` is never masked; `answer` is; `n_eos` EOS tokens follow.

    `pieces`, when given, replaces prompt and answer: (text, maskable) parts in order (fact rows)."""

    prompt: str
    answer: str
    n_eos: int
    task: str
    pieces: tuple = ()


@dataclass(frozen=True)
class CorpusConfig:
    """Row proportions. Shares are of all rows (drill, fact, then pretraining, else SFT by `mix`)."""

    mix: dict = field(default_factory=lambda: dict(MIX))
    pretrain_share: float = PRETRAIN_SHARE
    fewshot_share: float = FEWSHOT_SHARE
    drill_share: float = 0.0
    fact_share: float = FACT_SHARE
    visible_work_share: float = VISIBLE_WORK_SHARE
    max_eos_pad: dict = field(default_factory=lambda: dict(MAX_EOS_PAD))

    def __post_init__(self):
        if set(self.mix) - set(TASKS) or not self.mix or min(self.mix.values()) < 0:
            raise ValueError(f"mix={self.mix!r}: keys must be among {sorted(TASKS)} with weights >= 0")
        for name in ("pretrain_share", "fewshot_share", "drill_share", "fact_share", "visible_work_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}={getattr(self, name)!r} must be in [0, 1]")
        shares = self.pretrain_share + self.drill_share + self.fact_share
        if shares > 1:
            raise ValueError(f"pretrain_share + drill_share + fact_share = {shares} must be <= 1")

    def as_dict(self) -> dict:
        return asdict(self)


def drill_text(rng: random.Random, n_items: int) -> str:
    """The worked equations of `n_items` training math problems, one after the other."""
    return " ".join(sample_item("math", rng).answer.split("\n")[0].strip() for _ in range(n_items))


_STEP = re.compile(r"(\d+[-+*/]\d+=)(\d+\.)")


def fact_row(rng: random.Random, n_steps: int) -> Row:
    """`n_steps` worked steps of training math problems; operands visible, only the results maskable."""
    pieces = []
    for _ in range(n_steps):
        operands, result = rng.choice(_STEP.findall(sample_item("math", rng).answer))
        pieces += [(" " + operands, False), (result, True)]
    return Row("", "", 0, "fact", tuple(pieces))


_RESULT = re.compile(r"(?<==)\d+|(?<=#### )\d+")


def visible_work_pieces(prompt: str, answer: str) -> tuple:
    """(text, maskable) pieces of a math row in which only the results and the final number may be masked."""
    pieces, last = [(prompt, False)], 0
    for m in _RESULT.finditer(answer):
        pieces += [(answer[last:m.start()], False), (m.group(), True)]
        last = m.end()
    return (*pieces, (answer[last:], False))


def sample_row(rng: random.Random, config: Optional[CorpusConfig] = None) -> Row:
    """Draw one training row (SFT, pretraining, drill or fact style)."""
    config = config or CorpusConfig()
    u = rng.random()
    if u < config.drill_share:
        return Row("", drill_text(rng, rng.randint(6, 10)), 1, "drill")
    if u < config.drill_share + config.fact_share:
        return fact_row(rng, rng.randint(4, 8))
    if u < config.drill_share + config.fact_share + config.pretrain_share:
        texts = [sample_item(_task(rng, config.mix), rng).text for _ in range(rng.randint(2, 3))]
        return Row("", "\n\n".join(texts), 1, "pretrain")
    task = _task(rng, config.mix)
    item = sample_item(task, rng)
    prompt = item.prompt
    if task == "math" and rng.random() < config.fewshot_share:
        shots = [sample_item("math", rng) for _ in range(rng.randint(1, 3))]
        prompt = arithmetic.fewshot_prompt(shots, item)
    n_eos = rng.randint(0, config.max_eos_pad[task])
    if task == "math" and config.visible_work_share and rng.random() < config.visible_work_share:
        return Row(prompt, item.answer, n_eos, task, visible_work_pieces(prompt, item.answer))
    return Row(prompt, item.answer, n_eos, task)


def rows(seed: int, config: Optional[CorpusConfig] = None) -> Iterator[Row]:
    """The endless, seeded stream of training rows."""
    rng = random.Random(seed)
    while True:
        yield sample_row(rng, config)


def sample_texts(n: int, seed: int = 0, mix: Optional[dict] = None) -> list:
    """`n` plain training texts (prompt + answer), e.g. as calibration data for quantization."""
    rng = random.Random(seed)
    return [sample_item(_task(rng, mix), rng).text for _ in range(n)]
