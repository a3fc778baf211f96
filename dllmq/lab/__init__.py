"""Compute helpers for the notebooks, one module per notebook (numbers only: drawing is in dllmq.viz).

    layers                   real layers and whole models, shared by notebooks 03-08
    n02_outliers             one layer's input under masking (the explorer)
    n03_quantization_basics  grids, granularity, clipping, outliers
    n04_gptq                 GPTQ column by column, its options
    n05_awq                  salient channels, the scale search
    n06_smoothquant          smoothing at strength α
    n07_quarot               rotations
    n08_duquant              DuQuant's stages
    n09_evaluating_dllms     scoring one item at a time, the steps curve, MC noise
    n10_reproduce_findings   the dashboard's numbers
    n11_beyond_the_paper     a readable view of the studies' records
"""
