"""One task item and the held-out rule that keeps TinyBench out of the training corpus.

Every generator draws items from a huge procedural space. A fixed 10% of that space, chosen by a hash
of the prompt text, is *held out*: the training corpus never contains those prompts, and TinyBench's
test and few-shot items are drawn only from them. The split is a pure function of the text, so it does
not depend on seeds or on the order in which items are drawn.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Optional

HELDOUT_PERCENT = 10


@dataclass
class Item:
    """A prompt and its answer. `answer` is the exact text that follows the prompt in training.

    general: `choices` and `label` (likelihood-scored multiple choice, answer = " " + choice)
    math:    `target` (the final number as a string)
    code:    `tests` (hidden asserts) and `entry_point` (the function name)
    """

    task: str
    kind: str
    prompt: str
    answer: str
    choices: Optional[list] = None
    label: Optional[int] = None
    target: Optional[str] = None
    tests: Optional[str] = None
    entry_point: Optional[str] = None
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None and v != {}}

    @property
    def text(self) -> str:
        return self.prompt + self.answer


def is_heldout(prompt: str) -> bool:
    """True when `prompt` belongs to the held-out 10% (TinyBench only, never trained on)."""
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % 100 < HELDOUT_PERCENT
