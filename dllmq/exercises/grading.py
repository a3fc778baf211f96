"""Grade submitted notebooks: each runs in a fresh kernel, in a temporary folder, with a per-cell timeout.

For every submission the grader
1. finds which notebook it is (the grade_ids of its check cells, else the file name's NN_ prefix);
2. restores its check cells from the instructor source when `source_dir` is given (as nbgrader does with
   locked cells), so an edited check cell cannot change the score;
3. runs it cell by cell with nbclient (errors do not stop the run; a cell running past `timeout` seconds
   ends it), with DLLMQ_SMOKE=1 unless `smoke=False`, and DLLMQ_RESULTS pointing at a file that every
   scored checker appends its result to (scoring.py);
4. scores each exercise of the notebook from the result its own check cell recorded: results recorded
   by any other cell are ignored, a check cell that raised (for instance a NameError because the
   solution cell above still raises NotImplementedError) or never ran scores 0 with the reason.

`grade` writes results.csv and results.json (one row per student x exercise), summary.csv (one row per
student x notebook), feedback/<student>/<notebook>.ipynb (the executed submission) and prints the summary.
Student code runs with the grader's rights: this is not a sandbox (neither is nbgrader); run it in a
throw-away container or account.
"""
from __future__ import annotations

import csv
import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterator

from . import catalog
from .catalog import nbgrader_meta
from .scoring import MODE_ENV, RESULTS_ENV


@dataclass
class Row:
    """One student x exercise. status: passed | failed | error (the check cell raised) | not run."""
    student: str
    notebook: str
    submission: str
    exercise: str
    status: str
    points: float
    max_points: float
    hint: str = ""
    message: str = ""


FIELDS = tuple(f.name for f in fields(Row))


def _nbformat():
    try:
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellTimeoutError, DeadKernelError
    except ImportError as e:  # pragma: no cover - both come with jupyter / nbmake
        raise ImportError("grading needs nbformat, nbclient and ipykernel: pip install nbclient ipykernel") from e
    return nbformat, NotebookClient, (CellTimeoutError, DeadKernelError)


def student_of(path: str | Path) -> str:
    """The folder holding the submission (submitted/<student>/NN.ipynb, or nbgrader's
    submitted/<student>/<assignment>/NN.ipynb where the assignment folder is named like the notebook)."""
    path = Path(path).resolve()
    folder = path.parent
    if folder.name == path.stem:
        folder = folder.parent
    return folder.name


def notebook_number(nb, name: str) -> str:
    """'03' for a submission of notebook 03 (from its check cells' grade_ids, else from its file name)."""
    numbers = {m.group(1) for c in nb.cells
               if (m := re.fullmatch(r"nb(\d\d)_ex\d+", str(nbgrader_meta(c).get("grade_id", ""))))}
    if len(numbers) > 1:
        raise ValueError(f"{name}: check cells of several notebooks ({', '.join(sorted(numbers))})")
    number = numbers.pop() if numbers else catalog.notebook_of(name)
    if number is None:
        raise ValueError(f"{name}: no check cells and no NN_ prefix: cannot tell which notebook it is")
    return number


def _source_notebook(source_dir: Path, number: str) -> Path:
    stem = catalog.NOTEBOOKS[number][0]
    for candidate in (source_dir / f"{stem}.ipynb", source_dir / stem / f"{stem}.ipynb"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"source_dir={str(source_dir)!r} holds no {stem}.ipynb (nor {stem}/{stem}.ipynb)")


def restore_checks(nb, source) -> int:
    """Replace the source of every check cell of `nb` by the same grade_id's cell in `source`; returns how many."""
    reference = {nbgrader_meta(c).get("grade_id"): c for c in source.cells if nbgrader_meta(c).get("grade")}
    restored = 0
    for cell in nb.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if gid in reference:
            cell.source = reference[gid].source
            cell.metadata["nbgrader"] = dict(reference[gid].metadata["nbgrader"])
            restored += 1
    return restored


@dataclass
class CellRun:
    """What one executed code cell did: its first error (ename, evalue) and the results it recorded."""
    index: int
    error: tuple | None
    results: list


def run_cells(nb, workdir: str | Path, env: dict, timeout: int) -> Iterator[CellRun]:
    """Execute the code cells of `nb` in order in a fresh kernel started in `workdir`, yielding each.

    Raises nbclient's CellTimeoutError / DeadKernelError when a cell runs past `timeout` or the kernel dies;
    closing the generator early shuts the kernel down."""
    _, NotebookClient, _ = _nbformat()
    results_path = Path(env[RESULTS_ENV])
    results_path.touch()
    kernel = nb.metadata.get("kernelspec", {}).get("name", "python3")
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel, allow_errors=True,
                            resources={"metadata": {"path": str(workdir)}})
    seen = 0
    with client.setup_kernel(env=env):
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            client.execute_cell(cell, index)
            with open(results_path, encoding="utf-8") as f:
                lines = f.read().splitlines()
            new, seen = [json.loads(line) for line in lines[seen:] if line.strip()], len(lines)
            error = next(((o.get("ename"), o.get("evalue")) for o in cell.get("outputs", [])
                          if o.get("output_type") == "error"), None)
            yield CellRun(index, error, new)


def kernel_env(results_path: str | Path, smoke: bool) -> dict:
    env = dict(os.environ)
    env.update({RESULTS_ENV: str(results_path), MODE_ENV: "report", "DLLMQ_SMOKE": "1" if smoke else "0"})
    env.setdefault("MPLBACKEND", "Agg")
    return env


def grade_notebook(path: str | Path, student: str | None = None, timeout: int = 600, smoke: bool = True,
                   source_dir: str | Path | None = None, executed_path: str | Path | None = None) -> list[Row]:
    """Run one submission and score each exercise of its notebook (see the module doc)."""
    nbformat, _, stops = _nbformat()
    path = Path(path)
    nb = nbformat.read(str(path), as_version=4)
    number = notebook_number(nb, path.name)
    if number not in catalog.NOTEBOOKS:
        raise ValueError(f"{path.name}: notebook {number} has no exercises")
    if source_dir is not None:
        restore_checks(nb, nbformat.read(str(_source_notebook(Path(source_dir), number)), as_version=4))
    student = student or student_of(path)
    check_cells = {nbgrader_meta(c).get("grade_id"): i for i, c in enumerate(nb.cells) if nbgrader_meta(c).get("grade")}
    runs: dict[int, CellRun] = {}
    stopped = ""
    with tempfile.TemporaryDirectory(prefix="dllmq-grade-") as tmp:
        env = kernel_env(Path(tmp) / "results.jsonl", smoke)
        try:
            for run in run_cells(nb, tmp, env, timeout):
                runs[run.index] = run
        except stops as e:
            stopped = f"the run stopped ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    if executed_path is not None:
        Path(executed_path).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(executed_path))
    rows = []
    for ex in catalog.exercises(number):
        base = dict(student=student, notebook=catalog.NOTEBOOKS[number][0], submission=str(path),
                    exercise=ex.exercise_id, max_points=ex.points)
        index = check_cells.get(ex.exercise_id)
        run = runs.get(index) if index is not None else None
        mine = [r for r in run.results if r.get("exercise_id") == ex.exercise_id] if run else []
        if index is None:
            rows.append(Row(**base, status="not run", points=0.0, hint="the check cell is missing"))
        elif mine:
            failed = [r for r in mine if not r.get("passed")]
            if failed:
                rows.append(Row(**base, status="failed", points=0.0, hint=failed[0].get("message", "")))
            else:
                rows.append(Row(**base, status="passed", points=ex.points, message=mine[-1].get("message", "")))
        elif run is not None and run.error:
            rows.append(Row(**base, status="error", points=0.0,
                            hint=f"the check cell raised {run.error[0]}: {run.error[1]}"))
        elif run is None:
            rows.append(Row(**base, status="not run", points=0.0, hint=stopped or "the check cell did not run"))
        else:
            rows.append(Row(**base, status="not run", points=0.0,
                            hint="the check cell ran but did not call its checker"))
    return rows


def summarize(rows: list[Row]) -> list[dict]:
    """One row per student x notebook: points, max points, exercises passed."""
    table: dict[tuple, dict] = {}
    for r in rows:
        s = table.setdefault((r.student, r.notebook), {"student": r.student, "notebook": r.notebook, "points": 0.0,
                                                       "max_points": 0.0, "passed": 0, "exercises": 0})
        s["points"] += r.points
        s["max_points"] += r.max_points
        s["passed"] += r.status == "passed"
        s["exercises"] += 1
    return list(table.values())


def _print_summary(summary: list[dict], rows: list[Row]) -> None:
    print(f"{'student':<16} {'notebook':<26} {'points':>9}  passed")
    for s in summary:
        print(f"{s['student']:<16} {s['notebook']:<26} {s['points']:>4g}/{s['max_points']:<4g}  "
              f"{s['passed']}/{s['exercises']}")
    for r in rows:
        if r.status != "passed":
            print(f"  {r.student} {r.exercise}: {r.status}: {r.hint}")


def grade(submissions: list, out: str | Path = "grades", timeout: int = 600, smoke: bool = True,
          source_dir: str | Path | None = None, student: str | None = None, quiet: bool = False) -> list[Row]:
    """Grade every submission; write results.csv/json, summary.csv and feedback/ under `out`; print the summary."""
    if not submissions:
        raise ValueError("submissions: give at least one submitted .ipynb")
    if timeout <= 0:
        raise ValueError(f"timeout={timeout}: must be > 0 seconds")
    missing = [str(p) for p in submissions if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"submissions not found: {', '.join(missing)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    for path in submissions:
        who = student or student_of(path)
        t0 = time.perf_counter()
        new = grade_notebook(path, who, timeout, smoke, source_dir, out / "feedback" / who / Path(path).name)
        rows += new
        if not quiet:
            got, total = sum(r.points for r in new), sum(r.max_points for r in new)
            print(f"graded {path} ({who}): {got:g}/{total:g} points in {time.perf_counter() - t0:.0f} s")
    with open(out / "results.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    (out / "results.json").write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n", encoding="utf-8")
    summary = summarize(rows)
    with open(out / "summary.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)
    if not quiet:
        _print_summary(summary, rows)
    return rows
