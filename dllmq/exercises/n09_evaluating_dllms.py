"""Checkers for notebook 09 (evaluating dLLMs). Each returns a scored CheckResult (scoring.py)."""
from __future__ import annotations

import math

from .scoring import scored


def likelihood_forwards(n_choices: int, answer_tokens: int, mc_samples: int, batch_size: int) -> int:
    """Forward passes to score one multiple-choice question with the MC ELBO: every choice needs
    mc_samples masked copies (1 when its answer is a single token: exact), batch_size copies per forward."""
    per_choice = 1 if answer_tokens == 1 else math.ceil(mc_samples / batch_size)
    return n_choices * per_choice


@scored("nb09_ex1", points=2)
def check_forward_count(student_fn) -> str:
    """Exercise 1: `student_fn(n_choices, answer_tokens, mc_samples, batch_size) -> int`."""
    cases = [(4, 3, 128, 32), (2, 5, 128, 8), (4, 1, 128, 32), (4, 1, 1, 1), (3, 2, 64, 64), (5, 7, 100, 32)]
    for case in cases:
        got, want = student_fn(*case), likelihood_forwards(*case)
        n, L, mc, b = case
        hint = ("a one-token answer is scored exactly: its only mask is the whole answer, so ONE forward per "
                "choice suffices" if L == 1 else f"each of the {n} choices needs {mc} masked copies, {b} per forward")
        assert got == want, f"forwards{case} = {got}, expected {want}: {hint}"
    return "correct: this is why the paper can afford MMLU (one-token answers) with a single sample"


@scored("nb09_ex2", points=1)
def check_mc_samples_for_mmlu(answer: int) -> str:
    """Exercise 2: how many MC samples does MMLU need for an exact likelihood? (its answers are ' A'..' D')"""
    assert answer == 1, (f"{answer} samples: MMLU's answers are single tokens; with L = 1 the only possible mask is "
                         "the whole answer, so one sample gives the exact log-probability")
    return "correct: the paper uses 1 MC sample for MMLU and 128 for the other general tasks"


@scored("nb09_ex3", points=2)
def check_tokens_per_step(student_fn) -> str:
    """Exercise 3: `student_fn(gen_length, steps) -> float`, tokens committed per denoising step on average."""
    for gen_length, steps in [(256, 256), (256, 64), (512, 128), (32, 8), (10, 4)]:
        got, want = student_fn(gen_length, steps), gen_length / steps
        assert abs(got - want) < 1e-9, (f"tokens_per_step({gen_length}, {steps}) = {got}, expected {want}: every "
                                        "position is committed exactly once, spread over the steps")
    return "correct: the paper's steps = gen length commits ONE token per step, the slowest and most careful setting"
