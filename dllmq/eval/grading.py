"""Graders: final-number exact match for math, sandboxed execution of hidden tests for code.

Generated code is never run in this process. Each program runs under `sandbox.run` (see that module):
a fresh `python -I -S` (no PYTHON* variables, no script dir or site-packages on sys.path, so neither this
project nor any installed package can be imported, only the standard library) in an empty temporary
directory with a minimal environment; on Linux in its own PID, network and mount namespaces where
permitted (otherwise process tracking and a seccomp socket filter), with limits on CPU seconds, address
space, file size, processes and open files, its stderr read with a size cap, and its whole process tree
killed at the wall-clock timeout. A program passes when it exits with status 0.
"""
from __future__ import annotations

import re
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

from .sandbox import Limits, run

DEFAULT_TIMEOUT = 5.0
MEMORY_LIMIT = 1 << 30  # bytes of address space per program
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


@dataclass
class RunResult:
    passed: bool
    status: str  # "passed" | "failed" | "timeout"
    output: str  # the last lines of stderr (why it failed)
    returncode: Optional[int] = None  # exit status; -N: killed by signal N; None: timed out
    stderr: str = ""  # the captured tail of stderr (at most Limits.output_bytes)
    stderr_bytes: int = 0  # how many bytes the program wrote to stderr in all
    isolation: Dict[str, str] = field(default_factory=dict)  # which mechanism covered what (see sandbox)


def run_program(source: str, timeout: float = DEFAULT_TIMEOUT, limits: Optional[Limits] = None) -> RunResult:
    """Run `source` as a script in the sandbox; passed = exit status 0 within `timeout` s."""
    if timeout <= 0:
        raise ValueError(f"timeout={timeout} must be > 0 seconds")
    out = run(source, timeout, limits or Limits(memory_bytes=MEMORY_LIMIT))
    err = out.stderr.decode("utf-8", "replace")
    tail = "\n".join(err.strip().splitlines()[-3:])
    if out.timed_out:
        return RunResult(False, "timeout", f"timed out after {timeout} s", None, err, out.stderr_bytes, out.isolation)
    if out.returncode is not None and out.returncode < 0:
        try:
            name = signal.Signals(-out.returncode).name
        except ValueError:
            name = str(-out.returncode)
        tail = (tail + "\n" if tail else "") + f"killed by {name}"
    passed = out.returncode == 0
    return RunResult(passed, "passed" if passed else "failed", tail, out.returncode, err, out.stderr_bytes,
                     out.isolation)


def code_program(prompt: str, completion: str, tests: str, entry_point: Optional[str] = None) -> str:
    """The program a completion is graded with: prompt + completion, then the hidden tests
    (HumanEval-style tests define `check(candidate)`, which is then called on the entry point)."""
    program = prompt + completion + "\n\n" + tests + "\n"
    if entry_point and "def check(" in tests:
        program += f"check({entry_point})\n"
    return program


def check_code(prompt: str, completion: str, tests: str, entry_point: Optional[str] = None,
               timeout: float = DEFAULT_TIMEOUT) -> RunResult:
    """Grade one completion by running its hidden tests in the sandbox."""
    return run_program(code_program(prompt, completion, tests, entry_point), timeout)


def check_code_many(programs: Sequence[str], timeout: float = DEFAULT_TIMEOUT, workers: int = 2) -> list:
    """Run many programs (each sandboxed), a few at a time; results in order."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(lambda src: run_program(src, timeout), programs))


def extract_answer(text: str) -> Optional[str]:
    """The final number of a worked answer: after the last '####' if present, else the last number."""
    if "####" in text:
        found = _NUMBER.findall(text.rsplit("####", 1)[1])
        if found:
            return _normalise(found[0])
    found = _NUMBER.findall(text)
    return _normalise(found[-1]) if found else None


def _normalise(number: str) -> str:
    number = number.replace(",", "")
    if "." in number:
        number = number.rstrip("0").rstrip(".")
    return number


def math_correct(generated: str, target: str) -> bool:
    """Exact match of the extracted final number with the target number."""
    answer = extract_answer(generated)
    return answer is not None and answer == _normalise(str(target))
