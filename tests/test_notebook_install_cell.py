"""The first cell of every notebook installs the kit the same way: from DLLMQ_SOURCE, never touching the
runtime's torch or ipywidgets, printing what it installed."""
import importlib.metadata
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dllmq.exercises import install_cell

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def first_code_cell(path: Path) -> str:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_first_cell_opens_with_the_same_install_block(path):
    block, rest = install_cell.split(first_code_cell(path))
    assert block == install_cell.render(install_cell.DEFAULT_SOURCE)
    assert "pip" not in rest and "google.colab" not in rest  # no second, divergent install logic
    assert "SMOKE = " in rest and "import dllmq" in rest  # the parameters follow the block


def test_there_are_twelve_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(12)]


class FakeDist:
    def __init__(self, name, version):
        self.metadata, self.version = {"Name": name}, version


@pytest.fixture
def block_ns(monkeypatch):
    """The block of notebook 00, executed here (dllmq is importable, so it installs nothing by itself)."""
    monkeypatch.delenv("DLLMQ_SOURCE", raising=False)
    monkeypatch.delenv("DLLMQ_REINSTALL", raising=False)
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append((a, k)))
    ns = {}
    exec(install_cell.split(first_code_cell(NOTEBOOKS[0]))[0], ns)
    assert calls == []
    return ns


def fake_pip(monkeypatch, after=()):
    """Replace pip: record the command and the pins file's content; afterwards `after` dists are installed."""
    before = [FakeDist("torch", "2.5.1+cu121"), FakeDist("ipywidgets", "7.7.1"), FakeDist("Transformers", "4.46.0"),
              FakeDist("numpy", "1.26.4")]
    state = {"dists": before, "calls": []}

    def run(cmd, check):
        pins = Path(cmd[cmd.index("-c") + 1]).read_text()
        state["calls"].append((cmd, pins))
        state["dists"] = [d for d in before if d.metadata["Name"].lower() not in {n.lower() for n, _ in after}] + \
            [FakeDist(n, v) for n, v in after]

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(importlib.metadata, "distributions", lambda: list(state["dists"]))
    return state


def test_the_source_variable_defaults_to_the_cell_and_yields_to_the_environment(monkeypatch, block_ns):
    assert block_ns["DLLMQ_SOURCE"] == install_cell.DEFAULT_SOURCE
    monkeypatch.setenv("DLLMQ_SOURCE", "git+https://example.org/course/dllmq.git@fall")
    ns = {}
    exec(install_cell.render("https://example.org/dllmq-0.1.0-py3-none-any.whl"), ns)
    assert ns["DLLMQ_SOURCE"] == "git+https://example.org/course/dllmq.git@fall"
    monkeypatch.delenv("DLLMQ_SOURCE")
    ns = {}
    exec(install_cell.render("https://example.org/dllmq-0.1.0-py3-none-any.whl"), ns)
    assert ns["DLLMQ_SOURCE"] == "https://example.org/dllmq-0.1.0-py3-none-any.whl"


def test_it_pins_torch_and_ipywidgets_and_prints_what_changed(monkeypatch, block_ns, capsys):
    state = fake_pip(monkeypatch, after=[("dllmq", "0.1.0"), ("gguf", "0.19.0"), ("transformers", "5.1.0")])
    block_ns["_install_dllmq"]("git+https://example.org/course/dllmq.git@fall")
    (cmd, pins), = state["calls"]
    assert cmd[:5] == [sys.executable, "-m", "pip", "install", "-q"]
    assert cmd[-1] == "dllmq[eval,gguf] @ git+https://example.org/course/dllmq.git@fall"
    assert pins.split() == ["torch==2.5.1+cu121", "ipywidgets==7.7.1"]
    assert not any(a.startswith(("torch", "ipywidgets")) for a in cmd)  # constrained, never requested
    assert not Path(cmd[cmd.index("-c") + 1]).exists()  # the pins file is removed
    out = capsys.readouterr().out.splitlines()
    assert out == ["installed dllmq[eval,gguf] @ git+https://example.org/course/dllmq.git@fall: "
                   "dllmq==0.1.0, gguf==0.19.0, transformers==5.1.0",
                   "kept as they were: torch==2.5.1+cu121, ipywidgets==7.7.1"]


@pytest.mark.parametrize("source,requirement", [
    ("https://example.org/w/dllmq-0.1.0-py3-none-any.whl",
     "dllmq[eval,gguf] @ https://example.org/w/dllmq-0.1.0-py3-none-any.whl"),
    ("dllmq[eval,gguf]==0.2.0", "dllmq[eval,gguf]==0.2.0"),
])
def test_a_wheel_url_or_a_requirement(monkeypatch, block_ns, source, requirement):
    state = fake_pip(monkeypatch)
    block_ns["_install_dllmq"](source)
    assert state["calls"][0][0][-1] == requirement


def test_a_local_clone_becomes_a_file_url(monkeypatch, block_ns, tmp_path):
    state = fake_pip(monkeypatch)
    block_ns["_install_dllmq"](str(tmp_path))
    assert state["calls"][0][0][-1] == f"dllmq[eval,gguf] @ {tmp_path.resolve().as_uri()}"


def test_an_empty_source_stops_with_what_to_set(block_ns):
    with pytest.raises(RuntimeError, match="DLLMQ_SOURCE is empty: set it to your course's fork"):
        block_ns["_install_dllmq"]("")


def test_reinstall_forces_the_install(monkeypatch):
    state = fake_pip(monkeypatch)
    monkeypatch.setenv("DLLMQ_REINSTALL", "1")
    monkeypatch.setenv("DLLMQ_SOURCE", "dllmq==0.1.0")
    exec(install_cell.render(), {})
    assert state["calls"][0][0][-1] == "dllmq==0.1.0"


def test_a_course_default_replaces_only_the_block():
    cell = first_code_cell(NOTEBOOKS[3])
    moved = install_cell.with_source(cell, "git+https://example.org/course/dllmq.git")
    assert 'os.environ.get("DLLMQ_SOURCE", "git+https://example.org/course/dllmq.git")' in moved
    assert install_cell.split(moved)[1] == install_cell.split(cell)[1]
    with pytest.raises(ValueError, match="must start with the install block"):
        install_cell.split("SMOKE = True\n")
    with pytest.raises(ValueError, match="single line"):
        install_cell.render("a\nb")


def _fake_wheel(folder: Path, requires: list, name: str = "dllmq", version: str = "0.1.0") -> Path:
    """A metadata-only wheel with the given Requires-Dist lines (no build backend needed)."""
    extras = sorted({r.split('extra == "')[1].rstrip('"') for r in requires if 'extra == "' in r})
    meta = "\n".join(["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
                     + [f"Provides-Extra: {e}" for e in extras] + [f"Requires-Dist: {r}" for r in requires]) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(f"{info}/METADATA", meta)
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", f"{info}/METADATA,,\n{info}/WHEEL,,\n{info}/RECORD,,\n")
    return wheel


def _pip_dry_run(cmd: list, report: Path, links: Path) -> subprocess.CompletedProcess:
    """`cmd` (a pip install command) as an offline dry run that may only use what is installed and `links`."""
    proc = subprocess.Popen(cmd[:4] + ["--dry-run", "--no-index", "--find-links", str(links), "--report", str(report)]
                            + cmd[4:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.CompletedProcess(cmd, proc.wait(), proc.communicate()[0])


def _run_the_cell(monkeypatch, tmp_path, block_ns, requires):
    """Run the block's real pip command as a dry run; returns (names pip would install, the command)."""
    report, links, seen = tmp_path / "report.json", tmp_path / "links", []

    def run(cmd, check):  # subprocess.run is faked by block_ns; pip goes through Popen
        seen.append(cmd)
        done = _pip_dry_run(cmd, report, links)
        if check and done.returncode:
            raise subprocess.CalledProcessError(done.returncode, cmd, done.stdout)

    monkeypatch.setattr(subprocess, "run", run)
    block_ns["_install_dllmq"](str(_fake_wheel(links, requires)))
    return [item["metadata"]["name"] for item in json.loads(report.read_text())["install"]], seen[0]


def test_pip_keeps_the_installed_torch_and_ipywidgets(monkeypatch, tmp_path, block_ns, capsys):
    requires = importlib.metadata.requires("dllmq")
    assert any(r.startswith("torch") for r in requires)
    assert _run_the_cell(monkeypatch, tmp_path, block_ns, requires)[0] == ["dllmq"]
    assert "kept as they were: torch==" in capsys.readouterr().out


@pytest.mark.parametrize("name,newer", [("torch", "2.14.0"), ("ipywidgets", "99.0")])
def test_pip_fails_loudly_rather_than_replace_torch_or_ipywidgets(monkeypatch, tmp_path, block_ns, name, newer):
    """A kit that wants a newer torch (offered by the index) would replace it; the pins refuse instead."""
    _fake_wheel(tmp_path / "links", [], name, newer)
    requires = [f"{name}>={newer}"]
    with pytest.raises(subprocess.CalledProcessError) as info:
        _run_the_cell(monkeypatch, tmp_path, block_ns, requires)
    assert "conflicting dependencies" in info.value.output
    cmd = info.value.cmd
    pins = cmd.index("-c")
    control = _pip_dry_run(cmd[:pins] + cmd[pins + 2:], tmp_path / "control.json", tmp_path / "links")
    assert control.returncode == 0, control.stdout  # without the pins pip would replace it
    installed = {i["metadata"]["name"]: i["metadata"]["version"]
                 for i in json.loads((tmp_path / "control.json").read_text())["install"]}
    assert installed == {"dllmq": "0.1.0", name: newer}
