"""GSM8K-like word problems with short worked answers ending in "#### N" (graded on N by exact match).

Kinds: add, sub, mul, div (one step) and add_sub, mul_add (two steps). Numbers stay small (results
below 200) so a tiny model can learn the arithmetic from digits. Answer format, e.g.
    " 7+5=12. 12-3=9.\n#### 9"
"""
from __future__ import annotations

import random

from .items import Item
from .lexicon import CONTAINERS, NAMES, THINGS

KINDS = ("add", "sub", "mul", "div", "add_sub", "mul_add")


def _item(kind: str, question: str, steps: list, result: int) -> Item:
    work = " ".join(f"{a}{op}{b}={c}." for a, op, b, c in steps)
    prompt = f"Question: {question}\nAnswer:"
    return Item("math", kind, prompt, f" {work}\n#### {result}", target=str(result))


def add(rng: random.Random) -> Item:
    who, what = rng.choice(NAMES), rng.choice(THINGS)
    a, b = rng.randint(2, 40), rng.randint(2, 40)
    q = rng.choice((
        f"{who} has {a} {what}. {who} gets {b} more {what}. How many {what} does {who} have now?",
        f"There are {a} {what} in a box and {b} {what} on a table. How many {what} are there in all?",
    ))
    return _item("add", q, [(a, "+", b, a + b)], a + b)


def sub(rng: random.Random) -> Item:
    who, other, what = *rng.sample(NAMES, 2), rng.choice(THINGS)
    a = rng.randint(10, 60)
    b = rng.randint(1, a - 1)
    q = rng.choice((
        f"{who} has {a} {what}. {who} gives {b} {what} to {other}. How many {what} does {who} have left?",
        f"A shop has {a} {what}. It sells {b} of them. How many {what} are left?",
    ))
    return _item("sub", q, [(a, "-", b, a - b)], a - b)


def mul(rng: random.Random) -> Item:
    who, what, box = rng.choice(NAMES), rng.choice(THINGS), rng.choice(CONTAINERS)
    a, b = rng.randint(2, 10), rng.randint(2, 10)
    q = rng.choice((
        f"{who} buys {a} {box}. Each of the {box} holds {b} {what}. How many {what} does {who} buy?",
        f"There are {a} {box} with {b} {what} in each. How many {what} are there?",
    ))
    return _item("mul", q, [(a, "*", b, a * b)], a * b)


def div(rng: random.Random) -> Item:
    who, what = rng.choice(NAMES), rng.choice(THINGS)
    b, c = rng.randint(2, 10), rng.randint(2, 10)
    a = b * c
    q = rng.choice((
        f"{who} shares {a} {what} equally among {b} friends. How many {what} does each friend get?",
        f"{a} {what} are put into {b} equal groups. How many {what} are in each group?",
    ))
    return _item("div", q, [(a, "/", b, c)], c)


def add_sub(rng: random.Random) -> Item:
    who, what = rng.choice(NAMES), rng.choice(THINGS)
    a, b = rng.randint(2, 30), rng.randint(2, 30)
    c = rng.randint(1, a + b - 1)
    q = rng.choice((
        f"{who} has {a} {what}. {who} finds {b} more {what} and then loses {c}. How many {what} does {who} have now?",
        f"A jar has {a} {what}. {who} adds {b} {what} and takes out {c}. How many {what} are in the jar?",
    ))
    return _item("add_sub", q, [(a, "+", b, a + b), (a + b, "-", c, a + b - c)], a + b - c)


def mul_add(rng: random.Random) -> Item:
    who, what, box = rng.choice(NAMES), rng.choice(THINGS), rng.choice(CONTAINERS)
    a, b, c = rng.randint(2, 9), rng.randint(2, 9), rng.randint(1, 30)
    q = rng.choice((
        f"{who} has {a} {box} with {b} {what} in each and {c} loose {what}. How many {what} does {who} have?",
        f"{who} buys {a} {box} of {b} {what} and gets {c} more {what}. How many {what} does {who} get in total?",
    ))
    return _item("mul_add", q, [(a, "*", b, a * b), (a * b, "+", c, a * b + c)], a * b + c)


GENERATORS = {"add": add, "sub": sub, "mul": mul, "div": div, "add_sub": add_sub, "mul_add": mul_add}


def sample(rng: random.Random, kind: str = None) -> Item:
    """One math item of `kind` (default: a kind drawn uniformly)."""
    kind = kind or rng.choice(KINDS)
    if kind not in GENERATORS:
        raise ValueError(f"kind={kind!r} is unknown; allowed: {', '.join(KINDS)}")
    return GENERATORS[kind](rng)


def fewshot_prompt(shots: list, item: Item) -> str:
    """The lm-eval few-shot layout: solved shots joined by a blank line, then the question."""
    return "".join(s.prompt + s.answer + "\n\n" for s in shots) + item.prompt
