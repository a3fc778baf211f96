"""Benchmarks: each bench_*.py reports ratios against a baseline run in the same process."""
