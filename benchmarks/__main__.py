"""Run every benchmark in this folder: `python -m benchmarks`."""
import importlib
import pathlib
import sys

for path in sorted(pathlib.Path(__file__).parent.glob("bench_*.py")):
    print(f"\n=== {path.stem} ===", flush=True)
    module = importlib.import_module(f"benchmarks.{path.stem}")
    module.main([]) if module.main.__code__.co_argcount else module.main()
sys.exit(0)
