"""The small closed world the tiny dLLM learns: names, things, categories, antonyms, orderings.

Every word here is lower-case ASCII and unambiguous (no word sits in two categories), so a question
built from these lists has exactly one right answer.
"""
from __future__ import annotations

NAMES = ("Tom", "Mia", "Sam", "Ann", "Ben", "Liz", "Max", "Eva", "Leo", "Zoe", "Dan", "Kim", "Joe", "Amy",
         "Ray", "Ivy", "Ted", "Sue", "Ali", "Eli", "Ada", "Lou", "Nina", "Omar")

THINGS = ("apples", "pens", "books", "cards", "eggs", "coins", "shells", "stamps", "cookies", "marbles",
          "flowers", "stickers", "balls", "cups", "rocks", "toys", "candies", "beads")

CONTAINERS = ("bags", "boxes", "baskets", "packs", "jars", "bowls")

OWNED = ("hat", "ball", "car", "bag", "cup", "kite", "coat", "bike", "box", "pen")

CATEGORIES = {
    "fruit": ("apple", "pear", "plum", "grape", "lemon", "peach", "mango", "cherry", "banana", "melon"),
    "animal": ("dog", "cat", "cow", "horse", "sheep", "goat", "lion", "tiger", "mouse", "rabbit"),
    "color": ("red", "blue", "green", "yellow", "pink", "brown", "black", "white", "purple", "gray"),
    "tool": ("hammer", "saw", "drill", "wrench", "shovel", "rake", "axe", "chisel"),
    "vehicle": ("car", "bus", "truck", "bike", "train", "boat", "plane", "ship"),
    "drink": ("tea", "milk", "juice", "water", "coffee", "soda", "cocoa"),
    "piece of furniture": ("chair", "table", "bed", "sofa", "desk", "shelf", "stool", "bench"),
}

COLORS = CATEGORIES["color"]

ANTONYMS = (("hot", "cold"), ("big", "small"), ("tall", "short"), ("fast", "slow"), ("happy", "sad"),
            ("wet", "dry"), ("loud", "quiet"), ("rich", "poor"), ("full", "empty"), ("early", "late"),
            ("clean", "dirty"), ("strong", "weak"), ("thick", "thin"), ("young", "old"), ("near", "far"),
            ("bright", "dark"), ("sweet", "sour"), ("smooth", "rough"), ("deep", "shallow"),
            ("wide", "narrow"), ("soft", "hard"), ("brave", "scared"))

# (comparative, its opposite): "A is taller than B" means B is shorter than A.
COMPARATIVES = (("taller", "shorter"), ("older", "younger"), ("faster", "slower"), ("stronger", "weaker"),
                ("richer", "poorer"), ("heavier", "lighter"), ("louder", "quieter"))

ORDERS = {
    "day": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "month": ("January", "February", "March", "April", "May", "June", "July", "August", "September",
              "October", "November", "December"),
}

# Code tasks: argument names by type, function names, and words used as string inputs in hidden tests.
NUM_ARGS = ("x", "n", "y", "k", "num", "value")
LIST_ARGS = ("xs", "nums", "items", "values", "data")
STR_ARGS = ("s", "text", "word", "name")
FUNC_NAMES = ("f", "g", "h", "solve", "compute", "calc", "func", "helper", "process", "answer", "run",
              "apply", "transform", "result", "check", "work")
TEST_WORDS = ("apple", "stone", "river", "cloud", "table", "garden", "banana", "lemon", "tiger", "candle",
              "pepper", "window", "sugar", "rabbit", "orange", "planet")


def all_words() -> set:
    """Every word of the world, so the tokenizer can be checked to keep each one whole."""
    words = set(NAMES) | set(THINGS) | set(CONTAINERS) | set(OWNED) | set(COLORS)
    for group in CATEGORIES.values():
        words |= set(group)
    for pair in ANTONYMS + COMPARATIVES:
        words |= set(pair)
    for seq in ORDERS.values():
        words |= set(seq)
    return words
