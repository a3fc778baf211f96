"""Scored checkers: every exercise checker returns a `CheckResult` (passed, points, hint) instead of raising.

A checker body is written as before: it raises AssertionError with a hint when the answer is wrong and
returns a short success message. `@scored(exercise_id, points)` (placed right above it, so the points live
next to the checker) turns that into a result:

* in a notebook the cell shows the result (green: points and message; red: the hint) and the run goes on,
  so one wrong exercise no longer stops "Run all";
* the result is appended to `RESULTS` (this process) and, when the environment variable `DLLMQ_RESULTS`
  names a file, written to it as one JSON line: that file is the side channel `dllmq assignments grade`
  reads after running a submission in a fresh kernel;
* with `DLLMQ_CHECKS=raise` a failed check raises AssertionError(hint) instead: nbgrader's autograder
  gives a test cell zero points only when it raises, so run `nbgrader autograde` with that setting.

Student code that raises (the stub's NotImplementedError, a TypeError, a shape error) is a failed check
with the error in the hint, never a crash of the check cell.

Points: a function to write is worth 2, a value to compute or read off is worth 1.
"""
from __future__ import annotations

import functools
import html
import json
import os
from dataclasses import asdict, dataclass
from typing import Callable

RESULTS_ENV = "DLLMQ_RESULTS"
MODE_ENV = "DLLMQ_CHECKS"
MODES = ("report", "raise")
RESULTS: list["CheckResult"] = []
NOT_IMPLEMENTED_HINT = "not implemented yet: replace `raise NotImplementedError()` with your code and rerun"


@dataclass(frozen=True)
class Exercise:
    """What a checker grades: `exercise_id` is 'nbNN_exK' (also the nbgrader grade_id of its check cell)."""
    exercise_id: str
    points: float
    checker: str

    @property
    def notebook(self) -> str:
        return self.exercise_id[2:4]


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check. `message` is the success message or, when it failed, the hint."""
    exercise_id: str
    passed: bool
    points: float
    max_points: float
    message: str
    error: str = ""  # the exception type when the student's code raised

    @property
    def hint(self) -> str:
        return "" if self.passed else self.message

    def __bool__(self) -> bool:
        return self.passed

    def __contains__(self, text: str) -> bool:
        return text in self.message

    def __str__(self) -> str:
        mark = "PASSED" if self.passed else "FAILED"
        return f"{mark} {self.exercise_id} ({self.points:g}/{self.max_points:g} points): {self.message}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        color = "#2e7d32" if self.passed else "#c62828"
        return (f'<div style="border-left:4px solid {color};padding:2px 8px"><b style="color:{color}">'
                f'{"passed" if self.passed else "failed"}</b> {html.escape(self.exercise_id)} '
                f"({self.points:g}/{self.max_points:g} points): {html.escape(self.message)}</div>")

    def assert_passed(self) -> "CheckResult":
        """Raise AssertionError(hint) when the check failed (for tests and nbgrader-style cells)."""
        if not self.passed:
            raise AssertionError(self.message)
        return self

    def to_dict(self) -> dict:
        return asdict(self)


def check_mode() -> str:
    """'report' (default: show the result, go on) or 'raise' (a failed check raises AssertionError)."""
    mode = os.environ.get(MODE_ENV, "report") or "report"
    if mode not in MODES:
        raise ValueError(f"{MODE_ENV}={mode!r}: allowed values are {', '.join(MODES)}")
    return mode


def record(result: CheckResult) -> None:
    """Keep `result` in RESULTS and append it to the $DLLMQ_RESULTS file, if set (the grader's side channel)."""
    RESULTS.append(result)
    path = os.environ.get(RESULTS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(result.to_dict()) + "\n")


def scored(exercise_id: str, points: float) -> Callable:
    """Decorate a raising checker so that it returns a CheckResult worth `points` (see the module doc)."""
    if not (len(exercise_id) >= 7 and exercise_id.startswith("nb") and exercise_id[2:4].isdigit()
            and exercise_id[4:7] == "_ex" and exercise_id[7:].isdigit()):
        raise ValueError(f"exercise_id={exercise_id!r}: expected 'nbNN_exK', e.g. 'nb03_ex2'")
    if not points > 0:
        raise ValueError(f"points={points!r}: must be > 0")

    def wrap(check: Callable[..., str]) -> Callable[..., CheckResult]:
        @functools.wraps(check)
        def run(*args, **kwargs) -> CheckResult:
            mode = check_mode()
            try:
                message, passed, error = check(*args, **kwargs), True, ""
            except AssertionError as e:
                message, passed, error = str(e) or "wrong answer", False, ""
            except NotImplementedError:
                message, passed, error = NOT_IMPLEMENTED_HINT, False, "NotImplementedError"
            except Exception as e:  # the student's code raised: a failed check, not a crashed cell
                message, passed, error = f"your code raised {type(e).__name__}: {e}", False, type(e).__name__
            result = CheckResult(exercise_id, passed, float(points) if passed else 0.0, float(points),
                                 str(message), error)
            record(result)
            if mode == "raise" and not passed:
                raise AssertionError(f"{exercise_id}: {result.message}")
            return result

        run.exercise = Exercise(exercise_id, float(points), check.__name__)
        return run

    return wrap
