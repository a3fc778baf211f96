"""The notebook timing benchmark measures a real run: wall time, the budget verdict and the slowest cells."""
import nbformat

from benchmarks import bench_notebooks


def test_time_notebook_reports_wall_time_and_the_slowest_cells(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import time\nx = 1"), nbformat.v4.new_code_cell("time.sleep(0.6)"),
                nbformat.v4.new_markdown_cell("prose"), nbformat.v4.new_code_cell("y = x + 1\ny")]
    path = tmp_path / "99_probe.ipynb"
    nbformat.write(nb, path)
    timing = bench_notebooks.time_notebook(path, timeout=60)
    slowest = timing["slowest_cells"][0]
    assert slowest["cell"] == 1 and slowest["last_line"] == "time.sleep(0.6)" and 0.6 <= slowest["seconds"] < 5
    assert timing["seconds"] >= slowest["seconds"] and timing["within_budget"]
    assert len(timing["slowest_cells"]) == 3 and not (tmp_path / "results").exists()  # ran in its own folder
