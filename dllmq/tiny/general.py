"""General-knowledge multiple choice (ARC/PIQA-like), scored by likelihood of each one-word choice.

Six kinds; each lists its choices in the question and the answer is one of them:
  category  "Which of these is a fruit: chair, pear or bus?"          world knowledge (lexicon)
  antonym   "What is the opposite of hot: cold, tall or green?"        word meaning
  order     "Which day comes after Tuesday: Monday, Wednesday or ..."  orderings (days, months)
  lookup    "Mia has a red hat and Tom has a blue hat. What color ..." reading a short story
  relation  "Mia is taller than Tom. Who is shorter?"                  reasoning about a relation
  compare   "Is 37 larger than 52?" -> yes / no                        numbers
"""
from __future__ import annotations

import random

from .items import Item
from .lexicon import ANTONYMS, CATEGORIES, COLORS, COMPARATIVES, NAMES, ORDERS, OWNED

KINDS = ("category", "antonym", "order", "lookup", "relation", "compare")


def _listing(words: list) -> str:
    return ", ".join(words[:-1]) + " or " + words[-1]


def _item(kind: str, question: str, choices: list, correct: str) -> Item:
    prompt = f"Question: {question}\nAnswer:"
    return Item("general", kind, prompt, " " + correct, choices=list(choices), label=choices.index(correct))


def category(rng: random.Random) -> Item:
    cat = rng.choice(sorted(CATEGORIES))
    correct = rng.choice(CATEGORIES[cat])
    others = sorted(w for c, ws in CATEGORIES.items() if c != cat for w in ws)
    choices = [correct, *rng.sample(others, 2)]
    rng.shuffle(choices)
    article = "an" if cat[0] in "aeiou" else "a"
    return _item("category", f"Which of these is {article} {cat}: {_listing(choices)}?", choices, correct)


def antonym(rng: random.Random) -> Item:
    pair = rng.choice(ANTONYMS)
    word, correct = pair if rng.random() < 0.5 else pair[::-1]
    others = sorted(w for p in ANTONYMS if p != pair for w in p)
    distractors = rng.sample(others, 2) if rng.random() < 0.5 else [word, rng.choice(others)]
    choices = [correct, *distractors]
    rng.shuffle(choices)
    return _item("antonym", f"What is the opposite of {word}: {_listing(choices)}?", choices, correct)


def order(rng: random.Random) -> Item:
    unit = rng.choice(sorted(ORDERS))
    seq = ORDERS[unit]
    i = rng.randrange(len(seq))
    direction = rng.choice(("after", "before"))
    correct = seq[(i + 1) % len(seq)] if direction == "after" else seq[i - 1]
    others = [w for w in seq if w not in (seq[i], correct)]
    choices = [correct, *rng.sample(others, 2)]
    rng.shuffle(choices)
    return _item("order", f"Which {unit} comes right {direction} {seq[i]}: {_listing(choices)}?", choices, correct)


def lookup(rng: random.Random) -> Item:
    a, b = rng.sample(NAMES, 2)
    ca, cb = rng.sample(COLORS, 2)
    thing = rng.choice(OWNED)
    asked, correct = (a, ca) if rng.random() < 0.5 else (b, cb)
    story = f"{a} has a {ca} {thing} and {b} has a {cb} {thing}."
    return _item("lookup", f"{story} What color is {asked}'s {thing}?", [ca, cb], correct)


def relation(rng: random.Random) -> Item:
    a, b = rng.sample(NAMES, 2)
    more, less = rng.choice(COMPARATIVES)
    asked = rng.choice((more, less))
    correct = a if asked == more else b
    choices = [a, b] if rng.random() < 0.5 else [b, a]
    return _item("relation", f"{a} is {more} than {b}. Who is {asked}?", choices, correct)


def compare(rng: random.Random) -> Item:
    digits = rng.choice((1, 2, 2, 3))
    lo, hi = (0, 9) if digits == 1 else (10 ** (digits - 1), 10 ** digits - 1)
    x, y = rng.sample(range(lo, hi + 1), 2)
    if rng.random() < 0.3:  # different lengths now and then
        y = rng.randint(0, 999)
        if y == x:
            y = x + 1
    word = rng.choice(("larger", "smaller"))
    truth = x > y if word == "larger" else x < y
    return _item("compare", f"Is {x} {word} than {y}?", ["yes", "no"], "yes" if truth else "no")


GENERATORS = {"category": category, "antonym": antonym, "order": order, "lookup": lookup,
              "relation": relation, "compare": compare}


def sample(rng: random.Random, kind: str = None) -> Item:
    """One general item of `kind` (default: a kind drawn uniformly)."""
    kind = kind or rng.choice(KINDS)
    if kind not in GENERATORS:
        raise ValueError(f"kind={kind!r} is unknown; allowed: {', '.join(KINDS)}")
    return GENERATORS[kind](rng)
