"""The procedural corpus and TinyBench: valid items, the held-out split, and no test item in training."""
import json
import random
import re
from pathlib import Path

import pytest

from dllmq.tiny import arithmetic, coding, corpus, general
from dllmq.tiny.bench import build_tinybench
from dllmq.tiny.items import HELDOUT_PERCENT, is_heldout

DATA = Path(__file__).resolve().parent.parent / "dllmq" / "eval" / "data"


def _shipped():
    return {p.stem: [json.loads(line) for line in p.read_text().splitlines()] for p in DATA.glob("*.jsonl")}


@pytest.mark.parametrize("kind", general.KINDS)
def test_general_items_have_one_listed_answer(kind):
    rng = random.Random(1)
    for _ in range(50):
        item = general.sample(rng, kind)
        assert item.answer == " " + item.choices[item.label]
        assert len(set(item.choices)) == len(item.choices)
        if kind in ("category", "antonym", "order"):
            assert all(c in item.prompt for c in item.choices)  # choices are listed in the question


def test_general_answers_are_right():
    rng = random.Random(2)
    for _ in range(200):
        item = general.sample(rng, "compare")
        x, word, y = re.match(r"Question: Is (\d+) (larger|smaller) than (\d+)\?", item.prompt).groups()
        truth = int(x) > int(y) if word == "larger" else int(x) < int(y)
        assert item.answer == (" yes" if truth else " no")
        item = general.sample(rng, "relation")
        a, more, b, asked = re.match(r"Question: (\w+) is (\w+) than (\w+)\. Who is (\w+)\?", item.prompt).groups()
        assert item.answer == " " + (a if asked == more else b)


@pytest.mark.parametrize("kind", arithmetic.KINDS)
def test_math_worked_steps_are_correct(kind):
    rng = random.Random(3)
    ops = {"+": int.__add__, "-": int.__sub__, "*": int.__mul__, "/": int.__floordiv__}
    for _ in range(100):
        item = arithmetic.sample(rng, kind)
        steps = re.findall(r"(\d+)([-+*/])(\d+)=(\d+)\.", item.answer)
        assert steps
        for a, op, b, c in steps:
            assert ops[op](int(a), int(b)) == int(c)
            if op == "/":
                assert int(a) % int(b) == 0
        assert item.answer.endswith(f"#### {item.target}") and steps[-1][3] == item.target
        assert 0 <= int(item.target) < 200


def test_code_reference_bodies_pass_their_tests():
    from dllmq.eval.grading import check_code_many, code_program
    rng = random.Random(4)
    items = [coding.sample(rng, kind) for kind in coding.KINDS]
    runs = check_code_many([code_program(i.prompt, i.answer, i.tests) for i in items])
    assert [r.status for r in runs] == ["passed"] * len(items), [(i.kind, r.output) for i, r in zip(items, runs) if not r.passed]
    assert all(i.tests.count("assert") == coding.N_TESTS for i in items)


def test_heldout_split_is_a_stable_tenth():
    prompts = [general.sample(random.Random(i)).prompt for i in range(3000)]
    share = sum(map(is_heldout, prompts)) / len(prompts)
    assert abs(share - HELDOUT_PERCENT / 100) < 0.03
    assert [is_heldout(p) for p in prompts[:50]] == [is_heldout(p) for p in prompts[:50]]


def test_training_stream_never_contains_a_tinybench_item():
    shipped = _shipped()
    test_prompts = {row["prompt"] for rows in shipped.values() for row in rows}
    assert all(is_heldout(p) for p in test_prompts)
    stream = corpus.rows(seed=0)
    for _ in range(4000):
        row = next(stream)
        assert row.prompt not in test_prompts
        text = row.prompt + row.answer
        # every prompt inside the row (few-shot and pretraining rows hold several) is a training prompt
        for chunk in re.findall(r"Question: [^\n]*\nAnswer:", text):
            assert chunk not in test_prompts and not is_heldout(chunk)
        for chunk in re.findall(r'def \w+\([^)]*\):\n    """[^\n]*"""\n', text):
            assert chunk not in test_prompts and not is_heldout(chunk)


def _doc_pattern(template: str) -> "re.Pattern":
    """A docstring template of `coding` as a regex over filled-in docstrings."""
    parts = re.split(r"\{\w\}", template)
    return re.compile(r"[\w']+".join(map(re.escape, parts)))


def test_training_code_rows_never_use_a_two_step_kind():
    """The two-step code kinds are TinyBench only: no training row (SFT or pretraining) asks for one."""
    two_step = [_doc_pattern(doc) for _, doc, _ in coding.TWO_STEP_SPECS.values()]
    rng = random.Random(7)
    bench_docs = [re.search(r'"""(.*)"""', coding.sample(rng, k).prompt).group(1) for k in coding.TWO_STEP_KINDS]
    assert all(any(p.fullmatch(d) for p in two_step) for d in bench_docs)  # the patterns do recognise them
    stream, seen = corpus.rows(seed=0), 0
    for _ in range(3000):
        row = next(stream)
        for doc in re.findall(r'"""(.*)"""', row.prompt + row.answer):
            seen += 1
            assert not any(p.fullmatch(doc) for p in two_step), doc
    assert seen > 300
    assert {corpus.sample_item("code", rng).kind for _ in range(500)} <= set(coding.KINDS)


def test_shipped_tinybench_matches_the_generator():
    """The jsonl files are exactly what `python -m dllmq.tiny.bench` writes (reproducible, unique prompts)."""
    shipped = _shipped()
    built = build_tinybench()
    assert set(shipped) == set(built)
    for name in built:
        assert shipped[name] == built[name], name
    prompts = [row["prompt"] for rows in built.values() for row in rows]
    assert len(prompts) == len(set(prompts))


def test_unknown_kind_is_a_clear_error():
    with pytest.raises(ValueError, match="allowed"):
        general.sample(random.Random(0), "nope")
    with pytest.raises(ValueError, match="allowed"):
        corpus.sample_item("poetry", random.Random(0))
