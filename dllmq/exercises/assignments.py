"""One source, two editions: the notebooks in notebooks/ are the instructor source; `build` writes the student edition.

The source follows nbgrader's format, so a course that uses nbgrader can take the notebooks as they are:
a solution cell carries `metadata.nbgrader = {solution: true, grade: false, grade_id: "nbNN_exK_solution"}`
and holds its answer between `### BEGIN SOLUTION` and `### END SOLUTION`; the check cell after it carries
`{grade: true, points: N, locked: true, grade_id: "nbNN_exK"}` (N is the `@scored` points of its checker).

`dllmq assignments build OUT` needs no nbgrader. It writes an nbgrader-style course folder:

    OUT/source/NN_name/NN_name.ipynb    the instructor notebooks, outputs stripped
    OUT/release/NN_name/NN_name.ipynb   the student edition: every solution region replaced by
                                        `# YOUR CODE HERE` + `raise NotImplementedError()` (at the marker's
                                        indentation, as nbgrader does), check cells kept, outputs stripped
    OUT/release/README.md               what students do
    OUT/assignments.json                every exercise with its points (the gradebook's columns)
    OUT/nbgrader_config.py              for `nbgrader autograde` run in OUT: DLLMQ_CHECKS=raise (nbgrader
                                        scores a test cell 0 only when it raises) and DLLMQ_SMOKE=1

`--install-source SPEC` writes the course's package source (its fork, a tag, a wheel URL) as the default
of DLLMQ_SOURCE in each first cell; `--colab-base URL` points each "Open in Colab" badge at the published
student copy (without it the badge, which links to the instructor source with its solutions, is removed).
`dllmq assignments grade` scores submissions (grading.py), `list` prints every exercise with its points and
`sync-install` rewrites the install block of the notebooks' first cells (after a change of install_cell.py).
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import sys
from pathlib import Path

from . import catalog, install_cell
from .catalog import nbgrader_meta

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
MARKDOWN_STUB = "YOUR ANSWER HERE"
BADGE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\(https://colab\.research\.google\.com/[^)]*\)\n?")
BADGE_AND_BLANK = re.compile(BADGE.pattern + r"\n?")


def strip_solution(source: str, where: str = "cell") -> str:
    """`source` with every BEGIN/END SOLUTION region (markers included) replaced by the stub."""
    out, inside, indent = [], False, ""
    for line in source.split("\n"):
        mark = line.strip()
        if mark == BEGIN:
            if inside:
                raise ValueError(f"{where}: {BEGIN!r} inside another solution region")
            inside, indent = True, line[: len(line) - len(line.lstrip())]
            out.extend(indent + s for s in STUB)
        elif mark == END:
            if not inside:
                raise ValueError(f"{where}: {END!r} without {BEGIN!r}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: {BEGIN!r} without {END!r}")
    return "\n".join(out)


def _text(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _lines(text: str) -> list[str]:
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def clean(nb: dict) -> dict:
    """A copy of `nb` without outputs, execution counts or execution metadata."""
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
        cell.get("metadata", {}).pop("execution", None)
    return nb


def student_notebook(nb: dict, install_source: str | None = None, colab_url: str | None = None,
                     where: str = "notebook") -> dict:
    """The student edition of instructor notebook `nb` (a dict in nbformat 4)."""
    nb = clean(nb)
    first_code = True
    for i, cell in enumerate(nb["cells"]):
        text, meta = _text(cell), nbgrader_meta(cell)
        if cell["cell_type"] == "code" and first_code:
            first_code = False
            if install_source is not None:
                text = install_cell.with_source(text, install_source)
        if BEGIN in text or END in text:
            text = strip_solution(text, f"{where}, cell {i}")
        elif meta.get("solution"):  # nbgrader: a solution cell without markers is replaced whole
            text = MARKDOWN_STUB if cell["cell_type"] == "markdown" else "\n".join(STUB)
        if cell["cell_type"] == "markdown" and BADGE.search(text):
            badge = (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url})\n"
                     if colab_url else "")
            text = (BADGE if colab_url else BADGE_AND_BLANK).sub(lambda _: badge, text)
        cell["source"] = _lines(text)
    return nb


def validate(nb: dict, notebook: str, where: str) -> list:
    """Check that the source notebook grades what its checker module declares; returns its exercises."""
    declared = {e.exercise_id: e for e in catalog.exercises(notebook)}
    checks = {nbgrader_meta(c).get("grade_id"): c for c in nb["cells"] if nbgrader_meta(c).get("grade")}
    problems = [f"no check cell with grade_id {eid!r}" for eid in declared if eid not in checks]
    problems += [f"check cell {gid!r} has points {nbgrader_meta(c).get('points')}, its checker declares "
                 f"{declared[gid].points:g}" for gid, c in checks.items()
                 if gid in declared and float(nbgrader_meta(c).get("points", -1)) != declared[gid].points]
    problems += [f"check cell {gid!r} is not an exercise of notebook {notebook}" for gid in checks
                 if gid not in declared]
    for i, cell in enumerate(nb["cells"]):
        if nbgrader_meta(cell).get("solution") and BEGIN not in _text(cell):
            problems.append(f"solution cell {i} has no {BEGIN!r} marker")
    if problems:
        raise ValueError(f"{where}: " + "; ".join(problems))
    return list(declared.values())


def _write(nb: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


STUDENT_README = """# {title}

One folder per notebook. Open it (JupyterLab or Colab), run it top to bottom, and
replace every `raise NotImplementedError()` under `# YOUR CODE HERE` with your answer. The cell after each
exercise checks it and shows a hint when it is wrong; it never stops the notebook. Keep the check cells
as they are (they are restored before grading) and hand in the .ipynb file.

| notebook | exercises | points |
|---|---|---|
{rows}
"""


NBGRADER_CONFIG = """\
# Read by nbgrader when it runs in this folder (generate_assignment, autograde).
# nbgrader gives a test cell zero points only when it raises; dllmq's checks raise on failure with DLLMQ_CHECKS=raise
# (in a student's notebook they show the hint instead). Grading runs in smoke mode like `dllmq assignments grade`.
import os

os.environ.setdefault("DLLMQ_CHECKS", "raise")
os.environ.setdefault("DLLMQ_SMOKE", "1")
c = get_config()  # noqa: F821 (provided by nbgrader)
"""


def build(out: str | Path, source_dir: str | Path = "notebooks", install_source: str | None = None,
          colab_base: str | None = None, only: list[str] | None = None, title: str = "dllmq assignments") -> dict:
    """Write the course folder (source/, release/, assignments.json) under `out`; returns the manifest."""
    source_dir, out = Path(source_dir), Path(out)
    paths = sorted(source_dir.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"source_dir={str(source_dir)!r}: no NN_*.ipynb notebooks there")
    if only:
        unknown = sorted(set(only) - {p.name[:2] for p in paths})
        if unknown:
            raise ValueError(f"only={unknown}: allowed values are {', '.join(p.name[:2] for p in paths)}")
        paths = [p for p in paths if p.name[:2] in only]
    if install_source is not None:
        install_cell.render(install_source)  # validates it
    for sub in ("source", "release"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
    manifest = {}
    for path in paths:
        nb, stem, number = json.loads(path.read_text(encoding="utf-8")), path.stem, path.name[:2]
        exercises = validate(nb, number, str(path)) if number in catalog.NOTEBOOKS else []
        colab = f"{colab_base.rstrip('/')}/{stem}/{stem}.ipynb" if colab_base else None
        _write(clean(nb), out / "source" / stem / path.name)
        _write(student_notebook(nb, install_source, colab, str(path)), out / "release" / stem / path.name)
        manifest[stem] = {"notebook": number, "file": f"release/{stem}/{path.name}",
                          "exercises": [{"exercise": e.exercise_id, "points": e.points, "checker": e.checker}
                                        for e in exercises],
                          "points": sum(e.points for e in exercises)}
    rows = "\n".join(f"| {stem} | {len(m['exercises'])} | {m['points']:g} |" for stem, m in manifest.items())
    (out / "release" / "README.md").write_text(STUDENT_README.format(title=title, rows=rows), encoding="utf-8")
    (out / "assignments.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    (out / "nbgrader_config.py").write_text(NBGRADER_CONFIG, encoding="utf-8")
    return manifest


def sync_install(paths: list, source: str = install_cell.DEFAULT_SOURCE) -> list:
    """Rewrite the install block of each notebook's first code cell with `source` as its default; returns
    the notebooks that changed (run it after changing install_cell.DEFAULT_SOURCE or its template)."""
    changed = []
    for path in map(Path, paths):
        nb = json.loads(path.read_text(encoding="utf-8"))
        first = next(c for c in nb["cells"] if c["cell_type"] == "code")
        new = install_cell.with_source(_text(first), source)
        if new != _text(first):
            first["source"] = _lines(new)
            _write(nb, path)
            changed.append(str(path))
    return changed


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dllmq assignments", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write the student edition and an nbgrader-style course folder")
    b.add_argument("out", help="the course folder to write (source/, release/, assignments.json)")
    b.add_argument("--notebooks", default="notebooks", help="the instructor source (default: notebooks)")
    b.add_argument("--install-source", default=None,
                   help="default of DLLMQ_SOURCE in the student edition: the course's fork or a wheel URL")
    b.add_argument("--colab-base", default=None,
                   help="URL prefix of the published release/ folder for the Colab badges, e.g. "
                        "https://colab.research.google.com/github/ORG/REPO/blob/main/release")
    b.add_argument("--only", nargs="+", default=None, metavar="NN", help="only these notebooks, e.g. 01 03")
    b.add_argument("--title", default="dllmq assignments", help="title of release/README.md")
    g = sub.add_parser("grade", help="run submissions in fresh kernels and score every exercise")
    g.add_argument("submissions", nargs="+", help="submitted notebooks (student id: the folder holding each)")
    g.add_argument("--out", default="grades", help="folder for results.csv/json, summary.csv, feedback/")
    g.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    g.add_argument("--full", action="store_true", help="run in full mode (default: DLLMQ_SMOKE=1)")
    g.add_argument("--source", default=None,
                   help="instructor notebooks to restore the check cells from before running (recommended)")
    g.add_argument("--student", default=None, help="the student id (only with one submission)")
    sub.add_parser("list", help="every exercise with its checker and points")
    s = sub.add_parser("sync-install", help="rewrite the install block of the notebooks' first cells")
    s.add_argument("notebooks", nargs="+", help="notebooks to rewrite in place")
    s.add_argument("--install-source", default=install_cell.DEFAULT_SOURCE, help="default of DLLMQ_SOURCE")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "build":
        manifest = build(args.out, args.notebooks, args.install_source, args.colab_base, args.only, args.title)
        total = sum(m["points"] for m in manifest.values())
        print(f"wrote {len(manifest)} notebooks, {sum(len(m['exercises']) for m in manifest.values())} exercises "
              f"({total:g} points) to {args.out}/release (student edition) and {args.out}/source")
        if not args.colab_base:
            print("no --colab-base: the Open-in-Colab badges were removed from the student edition")
        return 0
    if args.command == "grade":
        from .grading import grade
        if args.student and len(args.submissions) != 1:
            print("dllmq assignments grade: --student needs exactly one submission", file=sys.stderr)
            return 2
        grade(args.submissions, out=args.out, timeout=args.timeout, smoke=not args.full, source_dir=args.source,
              student=args.student)
        return 0
    if args.command == "sync-install":
        changed = sync_install(args.notebooks, args.install_source)
        print(f"rewrote the install block of {len(changed)} of {len(args.notebooks)} notebooks")
        return 0
    for e in catalog.exercises():
        print(f"{e.exercise_id}  {e.points:g} points  {e.checker}")
    return 0
