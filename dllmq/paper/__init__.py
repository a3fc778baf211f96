"""The paper "Quantization Meets dLLMs" (arXiv 2508.14896) as data, and measured results set beside it.

    from dllmq import paper
    paper.table(3)                       # Table 3 as printed (tables.py)
    paper.check()                        # every printed average and drop recomputed; the misprints
    paper.compare(measured, table=3)     # paper vs measured with drops and bands (compare.py)
    paper.FINDINGS["F3"]                 # the findings and the rows they rest on (findings.py)

Drawing lives in `dllmq.viz.results`; running a table is `dllmq.sweeps.reproduce`.
"""
from .compare import compare, format_comparison, recipe_row
from .findings import FINDINGS, get_finding, paper_evidence, tiny_drops, tiny_evidence
from .tables import (BANDS, CAPTIONS, TABLES, band, category_drops, check, format_table, misprints, paper_results,
                     paper_value, report, table)

__all__ = ["compare", "format_comparison", "recipe_row", "FINDINGS", "get_finding", "paper_evidence", "tiny_drops",
           "tiny_evidence", "BANDS", "CAPTIONS", "TABLES", "band", "category_drops", "check", "format_table", "misprints",
           "paper_results", "paper_value", "report", "table"]
