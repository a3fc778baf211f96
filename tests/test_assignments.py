"""One source, two editions, and grading: the instructor notebooks follow nbgrader's format, `build` writes a
student edition without a single solution line, the student notebooks run up to their first exercise, and
`grade` scores submissions run in fresh kernels."""
import copy
import csv
import json
import re
import time
from pathlib import Path

import pytest

from dllmq.cli import main as dllmq_main
from dllmq.exercises import assignments, catalog, grading, install_cell

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def text(cell: dict) -> str:
    return "".join(cell["source"])


def meta(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def solution_lines(nb: dict) -> list:
    """The code lines inside every BEGIN/END SOLUTION region (comments and blank lines left out)."""
    found = []
    for cell in nb["cells"]:
        inside = False
        for line in text(cell).split("\n"):
            s = line.strip()
            if s in (assignments.BEGIN, assignments.END):
                inside = s == assignments.BEGIN
            elif inside and s and not s.startswith("#"):
                found.append(s)
    return found


# -- the instructor source -----------------------------------------------------------------------------

@pytest.mark.parametrize("path", SOURCES[1:], ids=[p.stem for p in SOURCES[1:]])
def test_the_source_follows_nbgrader_format(path):
    nb = load(path)
    number = path.name[:2]
    exercises = assignments.validate(nb, number, path.name)
    assert [e.exercise_id for e in exercises] == [e.exercise_id for e in catalog.exercises(number)]
    cells = nb["cells"]
    for ex in exercises:
        i = next(i for i, c in enumerate(cells) if meta(c).get("grade_id") == ex.exercise_id)
        check, solution = meta(cells[i]), meta(cells[i - 1])
        assert check == {"grade": True, "grade_id": ex.exercise_id, "locked": True, "points": ex.points,
                         "schema_version": 3, "solution": False, "task": False}
        assert solution == {"grade": False, "grade_id": f"{ex.exercise_id}_solution", "locked": False,
                            "schema_version": 3, "solution": True, "task": False}
        assert f"{ex.checker}(" in text(cells[i]) and "SOLUTION" not in text(cells[i])
        assert text(cells[i - 1]).count(assignments.BEGIN) == text(cells[i - 1]).count(assignments.END) == 1
    assert "replace with your own" not in path.read_text()
    assert solution_lines(nb)


def test_notebook_00_has_no_exercises_and_every_other_has_some():
    assert SOURCES[0].name == "00_setup.ipynb" and "00" not in catalog.NOTEBOOKS
    assert sorted(catalog.NOTEBOOKS) == [p.name[:2] for p in SOURCES[1:]]
    assert all(catalog.NOTEBOOKS[p.name[:2]][0] == p.stem for p in SOURCES[1:])


def test_validate_names_what_is_out_of_sync():
    nb = load(NOTEBOOKS / "03_quantization_basics.ipynb")
    wrong_points = copy.deepcopy(nb)
    cell = next(c for c in wrong_points["cells"] if meta(c).get("grade_id") == "nb03_ex2")
    cell["metadata"]["nbgrader"]["points"] = 5
    with pytest.raises(ValueError, match="'nb03_ex2' has points 5, its checker declares 2"):
        assignments.validate(wrong_points, "03", "nb03")
    missing = copy.deepcopy(nb)
    missing["cells"] = [c for c in missing["cells"] if meta(c).get("grade_id") != "nb03_ex3"]
    with pytest.raises(ValueError, match="no check cell with grade_id 'nb03_ex3'"):
        assignments.validate(missing, "03", "nb03")


# -- the student edition -------------------------------------------------------------------------------

def test_strip_solution_keeps_the_indentation_and_refuses_broken_markers():
    src = ("def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n\n"
           "y = 1\n### BEGIN SOLUTION\nz = 3\n### END SOLUTION")
    assert assignments.strip_solution(src) == ("def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\n"
                                               "y = 1\n# YOUR CODE HERE\nraise NotImplementedError()")
    with pytest.raises(ValueError, match="cell 4: '### BEGIN SOLUTION' without '### END SOLUTION'"):
        assignments.strip_solution("### BEGIN SOLUTION\nx = 1", "cell 4")
    with pytest.raises(ValueError, match="without '### BEGIN SOLUTION'"):
        assignments.strip_solution("x = 1\n### END SOLUTION")


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    out = tmp_path_factory.mktemp("course")
    assert dllmq_main(["assignments", "build", str(out), "--notebooks", str(NOTEBOOKS)]) == 0
    return out


def test_build_writes_an_nbgrader_style_course_folder(course):
    for path in SOURCES:
        assert (course / "source" / path.stem / path.name).is_file()
        assert (course / "release" / path.stem / path.name).is_file()
    manifest = json.loads((course / "assignments.json").read_text())
    assert list(manifest) == [p.stem for p in SOURCES]
    assert manifest["03_quantization_basics"]["exercises"] == [
        {"exercise": e.exercise_id, "points": e.points, "checker": e.checker} for e in catalog.exercises("03")]
    assert sum(m["points"] for m in manifest.values()) == sum(e.points for e in catalog.exercises())
    config = (course / "nbgrader_config.py").read_text()
    assert 'os.environ.setdefault("DLLMQ_CHECKS", "raise")' in config
    compile(config, "nbgrader_config.py", "exec")
    readme = (course / "release" / "README.md").read_text()
    assert "| 03_quantization_basics | 3 | 5 |" in readme and "NotImplementedError" in readme


@pytest.mark.parametrize("path", SOURCES, ids=[p.stem for p in SOURCES])
def test_no_solution_line_survives_in_the_student_edition(course, path):
    source, student = load(path), load(course / "release" / path.stem / path.name)
    student_text = {line.strip() for c in student["cells"] for line in text(c).split("\n")}
    leaked = [line for line in solution_lines(source) if line in student_text]
    assert leaked == []
    assert not any(assignments.BEGIN in text(c) or assignments.END in text(c) for c in student["cells"])
    assert len(student["cells"]) == len(source["cells"])
    regions = sum(text(c).count(assignments.BEGIN) for c in source["cells"])
    assert sum(text(c).count("raise NotImplementedError()") for c in student["cells"]) == regions
    for a, b in zip(source["cells"], student["cells"]):
        if b["cell_type"] == "code":
            assert b["outputs"] == [] and b["execution_count"] is None
        if not meta(a).get("solution"):  # check cells and ordinary cells are kept (the badge goes)
            assert text(a) == text(b) or "colab" in text(a)
        assert meta(a) == meta(b)
    assert "colab.research.google.com/github" not in json.dumps(student)  # no link to the answer key


def test_a_course_sets_its_install_source_and_colab_links(tmp_path):
    out = tmp_path / "course"
    manifest = assignments.build(out, NOTEBOOKS, install_source="git+https://example.org/course/dllmq.git@fall",
                                 colab_base="https://colab.research.google.com/github/course/repo/blob/main/release",
                                 only=["01"])
    assert list(manifest) == ["01_denoising_decoding"]
    nb = load(out / "release" / "01_denoising_decoding" / "01_denoising_decoding.ipynb")
    first = text(next(c for c in nb["cells"] if c["cell_type"] == "code"))
    assert install_cell.split(first)[0] == install_cell.render("git+https://example.org/course/dllmq.git@fall")
    links = re.findall(r"\(https://colab\.research\.google\.com/github/[^)]*\)", text(nb["cells"][0]))
    assert links == ["(https://colab.research.google.com/github/course/repo/blob/main/release/"
                     "01_denoising_decoding/01_denoising_decoding.ipynb)"]
    with pytest.raises(ValueError, match=r"only=\['42'\]: allowed values are 00, 01"):
        assignments.build(out, NOTEBOOKS, only=["42"])
    with pytest.raises(FileNotFoundError, match="no NN_\\*.ipynb notebooks"):
        assignments.build(out, tmp_path)


def test_sync_install_rewrites_only_the_install_block(tmp_path, capsys):
    copy_ = tmp_path / "03_quantization_basics.ipynb"
    copy_.write_text((NOTEBOOKS / "03_quantization_basics.ipynb").read_text())
    argv = ["assignments", "sync-install", str(copy_), "--install-source", "dllmq==0.2.0"]
    assert dllmq_main(argv) == 0 and "rewrote the install block of 1 of 1" in capsys.readouterr().out
    before, after = load(NOTEBOOKS / "03_quantization_basics.ipynb"), load(copy_)
    first = next(i for i, c in enumerate(after["cells"]) if c["cell_type"] == "code")
    assert install_cell.split(text(after["cells"][first]))[0] == install_cell.render("dllmq==0.2.0")
    assert [text(c) for i, c in enumerate(after["cells"]) if i != first] == \
        [text(c) for i, c in enumerate(before["cells"]) if i != first]
    assert assignments.sync_install([copy_], "dllmq==0.2.0") == []  # already in sync


def test_list_prints_every_exercise(capsys):
    assert dllmq_main(["assignments", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(catalog.exercises()) and lines[0] == "nb01_ex1  2 points  check_quota"


@pytest.mark.slow
def test_student_notebooks_run_up_to_their_first_exercise(course, tmp_path):
    """Each student notebook, cell by cell in smoke mode: nothing fails before the first stub, and that stub
    raises NotImplementedError (a value exercise) or its check reports 'not implemented' (a function)."""
    times = {}
    for path in SOURCES:
        nb = grading._nbformat()[0].read(str(course / "release" / path.stem / path.name), as_version=4)
        work = tmp_path / path.stem
        work.mkdir()
        env = grading.kernel_env(work / "results.jsonl", smoke=True)
        t0, reached = time.perf_counter(), None
        for run in grading.run_cells(nb, work, env, timeout=120):
            cell = nb.cells[run.index]
            if run.error:
                assert run.error[0] == "NotImplementedError" and meta(cell).get("solution"), (
                    f"{path.name} cell {run.index} raised {run.error[0]}: {run.error[1]}")
                reached = meta(cell)["grade_id"]
                break
            if meta(cell).get("grade"):
                assert [(r["passed"], r["error"]) for r in run.results] == [(False, "NotImplementedError")], (
                    f"{path.name} cell {run.index}: {run.results}")
                reached = meta(cell)["grade_id"]
                break
        times[path.stem] = time.perf_counter() - t0
        number = path.name[:2]
        assert reached in ({None} if number == "00" else {f"nb{number}_ex1", f"nb{number}_ex1_solution"}), path.name
    print("seconds to the first exercise:", {k: round(v) for k, v in times.items()},
          "total", round(sum(times.values())))


# -- grading -------------------------------------------------------------------------------------------

def _carol_03(course: Path, folder: Path) -> Path:
    """Notebook 03 solved, except a per-row quantizer in exercise 2; she also edits that check cell to
    pass a correct function and calls the checker with a correct answer in a cell of her own."""
    nb = load(NOTEBOOKS / "03_quantization_basics.ipynb")
    cells = nb["cells"]
    sol = next(c for c in cells if meta(c).get("grade_id") == "nb03_ex2_solution")
    sol["source"] = ["def my_group_fq(w, bits, group_size):\n",
                     "    return fake_quantize(w, bits, granularity=\"channel\")\n"]
    check = next(i for i, c in enumerate(cells) if meta(c).get("grade_id") == "nb03_ex2")
    cells[check]["source"] = ['ex.check_group_fake_quant(lambda w, b, g: fake_quantize(w, b, granularity="group", '
                              'group_size=g))\n']
    cells.insert(check + 1, {"cell_type": "code", "execution_count": None, "id": "carol", "metadata": {},
                             "outputs": [], "source": ['ex.check_group_fake_quant(lambda w, b, g: fake_quantize('
                                                       'w, b, granularity="group", group_size=g))\n']})
    path = folder / "carol" / "03_quantization_basics.ipynb"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(nb))
    return path


@pytest.mark.slow
def test_grade_scores_every_student_and_exercise(course, tmp_path, capsys):
    subs = tmp_path / "submitted"
    alice = subs / "alice" / "01_denoising_decoding" / "01_denoising_decoding.ipynb"  # nbgrader's layout
    alice.parent.mkdir(parents=True)
    alice.write_text((NOTEBOOKS / "01_denoising_decoding.ipynb").read_text())
    bob = subs / "bob" / "03_quantization_basics.ipynb"  # the student edition, handed in as it is
    bob.parent.mkdir(parents=True)
    bob.write_text((course / "release" / "03_quantization_basics" / "03_quantization_basics.ipynb").read_text())
    carol = _carol_03(course, subs)
    out = tmp_path / "grades"
    argv = ["assignments", "grade", str(alice), str(bob), str(carol), "--out", str(out), "--timeout", "120",
            "--source", str(course / "source")]
    assert dllmq_main(argv) == 0
    rows = {(r["student"], r["exercise"]): r for r in csv.DictReader(open(out / "results.csv"))}
    stalled = [r["hint"] for r in rows.values() if "CellTimeoutError" in r["hint"]]
    assert not stalled, f"a kernel timed out (make test reruns a test that timed out once): {stalled}"
    assert len(rows) == 2 + 3 + 3
    assert all(rows["alice", e]["status"] == "passed" and float(rows["alice", e]["points"]) == 2
               for e in ("nb01_ex1", "nb01_ex2"))
    assert [rows["bob", e]["status"] for e in ("nb03_ex1", "nb03_ex2", "nb03_ex3")] == ["failed", "failed", "error"]
    assert "not implemented yet" in rows["bob", "nb03_ex1"]["hint"]
    assert "the check cell raised NameError" in rows["bob", "nb03_ex3"]["hint"]  # its value stub raised above
    assert sum(float(r["points"]) for (s, _), r in rows.items() if s == "bob") == 0
    assert [rows["carol", e]["status"] for e in ("nb03_ex1", "nb03_ex2", "nb03_ex3")] == ["passed", "failed", "passed"]
    assert "ROW" in rows["carol", "nb03_ex2"]["hint"] and rows["carol", "nb03_ex2"]["points"] == "0.0"
    summary = {r["student"]: r for r in csv.DictReader(open(out / "summary.csv"))}
    assert {s: (float(r["points"]), float(r["max_points"])) for s, r in summary.items()} == {
        "alice": (4, 4), "bob": (0, 5), "carol": (3, 5)}
    assert json.loads((out / "results.json").read_text())[0]["student"] == "alice"
    assert (out / "feedback" / "carol" / "03_quantization_basics.ipynb").is_file()
    printed = capsys.readouterr().out
    assert re.search(r"carol\s+03_quantization_basics\s+3/5\s+2/3", printed)
    assert "carol nb03_ex2: failed:" in printed


def test_grade_refuses_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="submissions not found"):
        grading.grade([tmp_path / "nope.ipynb"], out=tmp_path)
    with pytest.raises(ValueError, match="timeout=0: must be > 0"):
        grading.grade([NOTEBOOKS / "01_denoising_decoding.ipynb"], out=tmp_path, timeout=0)
    anonymous = tmp_path / "homework.ipynb"
    anonymous.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    with pytest.raises(ValueError, match="cannot tell which notebook"):
        grading.grade_notebook(anonymous)
    assert dllmq_main(["assignments", "grade", str(anonymous), str(anonymous), "--student", "x"]) == 2


def test_the_student_is_the_folder_holding_the_submission(tmp_path):
    assert grading.student_of(tmp_path / "submitted" / "dana" / "03_quantization_basics.ipynb") == "dana"
    assert grading.student_of(tmp_path / "dana" / "03_quantization_basics" / "03_quantization_basics.ipynb") == "dana"
