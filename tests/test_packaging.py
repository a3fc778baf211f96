"""The project files keep their promises: README commands, CI, environment.yml, notebooks stripped."""
import json
import pathlib
import re
import tomllib

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_readme_has_exactly_two_quickstart_commands_and_ci_calls_the_test_one():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quickstart", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)


def test_torch_range_admits_the_local_cpu_build():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_dep = next(d for d in deps if d.startswith("torch"))
    floor = re.search(r">=\s*([\d.]+)", torch_dep).group(1)
    assert tuple(map(int, floor.split("."))) <= (2, 13, 0) and "<" not in torch_dep
    assert "torch==2.13.0" in (ROOT / "Makefile").read_text()


def test_environment_yml_installs_the_package_from_conda_forge_python():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    pip = next(d for d in env["dependencies"] if isinstance(d, dict))["pip"]
    assert any(p.startswith("-e .") for p in pip) and any(p.startswith("torch") for p in pip)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    wanted = re.search(r"\[(.*)\]", next(p for p in pip if p.startswith("-e ."))).group(1).split(",")
    assert set(wanted) <= set(extras)


def test_notebooks_are_stripped_and_start_with_a_parameters_cell():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert len(notebooks) >= 2
    for path in notebooks:
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(not c.get("outputs") and not c.get("execution_count") for c in code), path.name
        first = code[0]
        assert "parameters" in first["metadata"].get("tags", []), path.name
        src = "".join(first["source"])
        assert "SMOKE" in src and "DLLMQ_SOURCE" in src and "MODEL" in src, path.name
        assert "colab-badge" in "".join(nb["cells"][0]["source"]), path.name


def test_readme_lists_every_notebook_with_a_colab_badge():
    readme = (ROOT / "README.md").read_text()
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        assert f"colab.research.google.com/github/dllmq/dllmq/blob/main/notebooks/{path.name}" in readme, path.name
