"""Tiny Python functions from a one-line spec (HumanEval-like), graded by hidden asserts.

The prompt is a signature and a docstring; the model writes the one-line body:

    def solve(xs):
        \"\"\"Return the numbers in xs that are greater than 4.\"\"\"
        return [v for v in xs if v > 4]

Each spec is a template (`SPECS`) over an argument of one type (number, two numbers, list, string)
and small constants; the hidden tests compare the call on random inputs with the reference body.
The corpus trains one-step kinds (`SPECS`); TinyBench adds two-step kinds (`TWO_STEP_SPECS`: a condition
inside a loop, a loop inside a reduction, a choice between two values) that are never trained on, so the
code score has headroom below 100% and shows whether quantization costs the model its composition.
"""
from __future__ import annotations

import random

from .items import Item
from .lexicon import FUNC_NAMES, LIST_ARGS, NUM_ARGS, STR_ARGS, TEST_WORDS

# kind: (argument type, docstring, body). {a}/{b} are argument names, {k}/{j} small ints, {c} a letter.
SPECS = {
    "add": ("num", "Return {a} plus {k}.", "{a} + {k}"),
    "sub": ("num", "Return {a} minus {k}.", "{a} - {k}"),
    "mul": ("num", "Return {a} times {k}.", "{a} * {k}"),
    "affine": ("num", "Return {a} times {k} plus {j}.", "{a} * {k} + {j}"),
    "square": ("num", "Return {a} squared.", "{a} * {a}"),
    "mod": ("num", "Return the remainder of {a} divided by {k}.", "{a} % {k}"),
    "is_even": ("num", "Return True if {a} is even.", "{a} % 2 == 0"),
    "greater": ("num", "Return True if {a} is greater than {k}.", "{a} > {k}"),
    "divisible": ("num", "Return True if {a} is divisible by {k}.", "{a} % {k} == 0"),
    "max2": ("pair", "Return the larger of {a} and {b}.", "max({a}, {b})"),
    "min2": ("pair", "Return the smaller of {a} and {b}.", "min({a}, {b})"),
    "sum2": ("pair", "Return the sum of {a} and {b}.", "{a} + {b}"),
    "prod2": ("pair", "Return the product of {a} and {b}.", "{a} * {b}"),
    "diff2": ("pair", "Return {a} minus {b}.", "{a} - {b}"),
    "sum": ("list", "Return the sum of the numbers in {a}.", "sum({a})"),
    "max": ("list", "Return the largest number in {a}.", "max({a})"),
    "min": ("list", "Return the smallest number in {a}.", "min({a})"),
    "len": ("list", "Return the number of items in {a}.", "len({a})"),
    "first": ("list", "Return the first item of {a}.", "{a}[0]"),
    "last": ("list", "Return the last item of {a}.", "{a}[-1]"),
    "map_mul": ("list", "Return a list with each number in {a} times {k}.", "[v * {k} for v in {a}]"),
    "map_add": ("list", "Return a list with each number in {a} plus {k}.", "[v + {k} for v in {a}]"),
    "filter_gt": ("list", "Return the numbers in {a} that are greater than {k}.", "[v for v in {a} if v > {k}]"),
    "count_gt": ("list", "Return how many numbers in {a} are greater than {k}.", "len([v for v in {a} if v > {k}])"),
    "filter_even": ("list", "Return the even numbers in {a}.", "[v for v in {a} if v % 2 == 0]"),
    "sorted": ("list", "Return {a} sorted from smallest to largest.", "sorted({a})"),
    "reverse": ("list", "Return {a} in reverse order.", "{a}[::-1]"),
    "count_eq": ("list", "Return how many times {k} appears in {a}.", "{a}.count({k})"),
    "upper": ("str", "Return {a} in upper case.", "{a}.upper()"),
    "lower": ("str", "Return {a} in lower case.", "{a}.lower()"),
    "reverse_str": ("str", "Return the string {a} reversed.", "{a}[::-1]"),
    "len_str": ("str", "Return the number of characters in {a}.", "len({a})"),
    "repeat": ("str", "Return {a} repeated {k} times.", "{a} * {k}"),
    "prefix": ("str", "Return the first {k} characters of {a}.", "{a}[:{k}]"),
    "suffix": ("str", "Return the last {k} characters of {a}.", "{a}[-{k}:]"),
    "starts": ("str", "Return True if {a} starts with '{c}'.", "{a}.startswith('{c}')"),
    "count_char": ("str", "Return how many times '{c}' appears in {a}.", "{a}.count('{c}')"),
}
# Two steps (a condition inside a loop, a loop inside a reduction, a choice between two values), built from
# the pieces above. Never in the training corpus: TinyBench only, so they measure composition, not recall.
TWO_STEP_SPECS = {
    "sum_gt": ("list", "Return the sum of the numbers in {a} that are greater than {k}.",
               "sum([v for v in {a} if v > {k}])"),
    "sum_even": ("list", "Return the sum of the even numbers in {a}.", "sum([v for v in {a} if v % 2 == 0])"),
    "count_even": ("list", "Return how many numbers in {a} are even.", "len([v for v in {a} if v % 2 == 0])"),
    "count_lt": ("list", "Return how many numbers in {a} are smaller than {k}.", "len([v for v in {a} if v < {k}])"),
    "filter_lt": ("list", "Return the numbers in {a} that are smaller than {k}.", "[v for v in {a} if v < {k}]"),
    "filter_odd": ("list", "Return the odd numbers in {a}.", "[v for v in {a} if v % 2 == 1]"),
    "map_square": ("list", "Return a list with each number in {a} squared.", "[v * v for v in {a}]"),
    "sum_squares": ("list", "Return the sum of the squares of the numbers in {a}.", "sum([v * v for v in {a}])"),
    "filter_map": ("list", "Return each number in {a} that is greater than {k}, times {j}.",
                   "[v * {j} for v in {a} if v > {k}]"),
    "spread": ("list", "Return the largest number in {a} minus the smallest.", "max({a}) - min({a})"),
    "all_gt": ("list", "Return True if every number in {a} is greater than {k}.", "all([v > {k} for v in {a}])"),
    "contains": ("list", "Return True if {k} is in {a}.", "{k} in {a}"),
    "head": ("list", "Return the first {k} items of {a}.", "{a}[:{k}]"),
    "cap": ("num", "Return {a}, but at most {k}.", "min({a}, {k})"),
    "floor": ("num", "Return {a}, but at least {k}.", "max({a}, {k})"),
    "step": ("num", "Return 1 if {a} is greater than {k}, else 0.", "1 if {a} > {k} else 0"),
    "round_even": ("num", "Return {a} if it is even, else {a} plus 1.", "{a} if {a} % 2 == 0 else {a} + 1"),
    "triangle": ("num", "Return the sum of the numbers from 1 to {a}.", "sum(range(1, {a} + 1))"),
    "distance": ("pair", "Return the distance between {a} and {b}.", "abs({a} - {b})"),
    "mirror": ("str", "Return {a} followed by {a} reversed.", "{a} + {a}[::-1]"),
}
KINDS = tuple(SPECS)  # what the training corpus draws from
TWO_STEP_KINDS = tuple(TWO_STEP_SPECS)
BENCH_KINDS = KINDS + TWO_STEP_KINDS  # what TinyBench's code split draws from
ALL_SPECS = {**SPECS, **TWO_STEP_SPECS}
N_TESTS = 8


def _args(kind: str, rng: random.Random) -> tuple:
    """(argument names, constants) for one spec instance."""
    argtype = ALL_SPECS[kind][0]
    if argtype == "pair":
        names = tuple(rng.choice((("a", "b"), ("x", "y"), ("m", "n"), ("p", "q"))))
    else:
        names = (rng.choice({"num": NUM_ARGS, "list": LIST_ARGS, "str": STR_ARGS}[argtype]),)
    if kind in ("prefix", "suffix", "repeat", "head"):
        k = rng.randint(2, 4)
    elif kind == "all_gt":  # small, so that both outcomes occur on random lists
        k = rng.randint(0, 3)
    elif kind in ("mod", "divisible"):
        k = rng.randint(2, 9)
    else:
        k = rng.randint(1, 12)
    consts = {"k": k, "j": rng.randint(1, 12), "c": rng.choice("aeinorst")}
    return names, consts


def _input(argtype: str, rng: random.Random) -> tuple:
    if argtype == "num":
        return (rng.randint(0, 30),)
    if argtype == "pair":
        return (rng.randint(0, 30), rng.randint(0, 30))
    if argtype == "list":
        return ([rng.randint(0, 12) for _ in range(rng.randint(2, 6))],)
    return (rng.choice(TEST_WORDS),)


def _tests(name: str, source: str, argtype: str, rng: random.Random) -> str:
    """Hidden asserts: the reference function on random inputs (both outcomes for predicates)."""
    namespace: dict = {}
    exec(compile(source, "<reference>", "exec"), namespace)  # our own template code, not model output
    fn = namespace[name]
    cases = {}  # assert line -> expected value
    for attempt in range(120):
        inputs = _input(argtype, rng)
        expected = fn(*[list(x) if isinstance(x, list) else x for x in inputs])
        line = f"assert {name}({', '.join(repr(x) for x in inputs)}) == {expected!r}"
        both = not isinstance(expected, bool) or {v for v in cases.values() if isinstance(v, bool)} | {expected} == {True, False}
        # the last slot goes to a missing predicate outcome, if one turns up in 60 draws
        wanted = len(cases) < N_TESTS - 1 or both or attempt >= 60
        if line not in cases and wanted:
            cases[line] = expected
        if len(cases) == N_TESTS:
            break
    return "\n".join(cases) + "\n"


def sample(rng: random.Random, kind: str = None, with_tests: bool = True) -> Item:
    """One code item of `kind` (default: a training kind drawn uniformly); answer = the indented body line."""
    kind = kind or rng.choice(KINDS)
    if kind not in ALL_SPECS:
        raise ValueError(f"kind={kind!r} is unknown; allowed: {', '.join(BENCH_KINDS)}")
    argtype, doc, body = ALL_SPECS[kind]
    names, consts = _args(kind, rng)
    fill = dict(a=names[0], b=names[-1], **consts)
    name = rng.choice(FUNC_NAMES)
    prompt = f'def {name}({", ".join(names)}):\n    """{doc.format(**fill)}"""\n'
    answer = f"    return {body.format(**fill)}"
    tests = _tests(name, prompt + answer + "\n", argtype, rng) if with_tests else None
    return Item("code", kind, prompt, answer, tests=tests, entry_point=name)
