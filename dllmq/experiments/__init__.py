"""Experiments: the results store, resumable sweeps, the paper as data, reproduction and studies.

    from dllmq.experiments import paper, ResultStore, run_sweep
    paper.table(3)                       # Table 3 as printed
    paper.compare(measured, table=3)     # paper vs measured with drops and bands
"""
from .store import ResultStore, merge_stores
from .sweep import Cell, grid, make_cell, run_sweep, shard_cells

__all__ = ["ResultStore", "merge_stores", "Cell", "grid", "make_cell", "run_sweep", "shard_cells"]
