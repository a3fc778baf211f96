"""Graders: final-number exact match for math, sandboxed execution of hidden tests for code.

Generated code is never run in this process. Each program runs in a fresh `python -I -S` subprocess
(isolated mode: no PYTHON* variables, no script dir on sys.path; -S: no site-packages, so neither this
project nor any installed package can be imported, only the standard library), in an empty temporary
directory, with a minimal environment, CPU-time and memory limits, and a wall-clock timeout after which
its whole process group is killed. A program passes when it exits with status 0.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional, Sequence

DEFAULT_TIMEOUT = 5.0
MEMORY_LIMIT = 1 << 30  # bytes of address space per program
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


@dataclass
class RunResult:
    passed: bool
    status: str  # "passed" | "failed" | "timeout"
    output: str  # the last lines of stderr (why it failed)


# Runs first in the child: resource limits (POSIX), then the program as __main__ (thread-safe, unlike preexec_fn).
_LIMITS = (
    "import resource\n"
    "resource.setrlimit(resource.RLIMIT_CPU, (int(sys.argv[2]), int(sys.argv[2])))\n"
    "resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[3]), int(sys.argv[3])))\n"
)
_BOOT = "import runpy, sys\n{limits}sys.argv = sys.argv[1:2]\nrunpy.run_path(sys.argv[0], run_name='__main__')\n"


def run_program(source: str, timeout: float = DEFAULT_TIMEOUT) -> RunResult:
    """Run `source` as a script in a sandboxed subprocess; passed = exit status 0 within `timeout` s."""
    if timeout <= 0:
        raise ValueError(f"timeout={timeout} must be > 0 seconds")
    with tempfile.TemporaryDirectory(prefix="dllmq_grade_") as tmp:
        path = os.path.join(tmp, "program.py")
        with open(path, "w", encoding="utf-8") as f:
            f.write(source)
        env = {"PATH": os.defpath, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
        boot = _BOOT.format(limits=_LIMITS if os.name == "posix" else "")
        cmd = [sys.executable, "-I", "-S", "-c", boot, "program.py", str(int(timeout) + 1), str(MEMORY_LIMIT)]
        proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the program and anything it started
            except ProcessLookupError:
                pass
            proc.communicate()
            return RunResult(False, "timeout", f"timed out after {timeout} s")
    tail = "\n".join(err.decode("utf-8", "replace").strip().splitlines()[-3:])
    return RunResult(proc.returncode == 0, "passed" if proc.returncode == 0 else "failed", tail)


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
