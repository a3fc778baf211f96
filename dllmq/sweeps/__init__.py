"""Sweeps: grids of cells (model x recipe x task x variant) run into a resumable results store.

    from dllmq.sweeps import ResultStore, grid, run_sweep
    cells = grid(["tiny"], ["fp", "gptq:w4a16g128:calib=tiny,n=16,len=128"], ["tinybench"])
    run_sweep(cells, CellRunner(), "results/mine.jsonl")      # runner.py: load, quantize, evaluate
    get_preset("table3").cells("tiny")                        # presets.py: the named grids
    reproduce(3, "GSAI-ML/LLaDA-8B-Instruct")                 # reproduce.py: a paper table, paper vs measured

Engine: store.py (append-only JSON lines), sweep.py (cells, shards, the resumable loop), runner.py and
tasks.py (what a cell's task means). Grids: presets.py (explicit table), demo.py, studies.py; the
measurements behind two studies: fidelity.py, lowbit.py.
"""
from .store import ResultStore, merge_stores
from .sweep import Cell, grid, make_cell, run_sweep, shard_cells

__all__ = ["ResultStore", "merge_stores", "Cell", "grid", "make_cell", "run_sweep", "shard_cells"]
