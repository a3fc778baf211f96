"""The `dllmq` command: one sub-command per capability, each implemented next to its code.

    dllmq demo          the README's main job on the embedded tiny model
    dllmq eval ...      lm-eval with the dLLM model class (forwards lm-eval's arguments)
    dllmq quantize ...  quantize a model with a recipe and save it
    dllmq reproduce ... regenerate a table of the paper (paper vs measured)
    dllmq figures ...   write the activation-outlier figures under figures/
    dllmq sweep ...     run a resumable sweep (preset or grid file) into a results store; show, merge
    dllmq train-tiny    train the embedded tiny dLLM from scratch
    dllmq assignments   build the student edition of the notebooks, grade submissions

Bad input (a recipe, a file, an option) ends with exit code 2 and one message naming what was wrong.
"""
from __future__ import annotations

import importlib
import os
import sys

COMMANDS = {
    "demo": ("dllmq.demo", "run the main demo on the tiny model"),
    "eval": ("dllmq.eval.cli", "evaluate with lm-eval (dLLM model class, offline TinyBench tasks)"),
    "quantize": ("dllmq.quant.cli", "quantize a model with a recipe string and save it"),
    "reproduce": ("dllmq.sweeps.reproduce", "reproduce a table of the paper, paper vs measured"),
    "sweep": ("dllmq.sweeps.cli", "run a resumable sweep preset into a results store"),
    "figures": ("dllmq.viz.figures", "write the activation-outlier figures"),
    "train-tiny": ("dllmq.tiny.train", "train the embedded tiny dLLM"),
    "assignments": ("dllmq.exercises.assignments", "build the student edition of the notebooks, grade submissions"),
}


USER_ERRORS = (ValueError, TypeError, FileNotFoundError)  # what validation raises for bad input
QUIET_COMMANDS = ("demo", "eval", "sweep", "reproduce")  # one progress bar and the tables; --verbose: all output


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"dllmq: unknown command {name!r}; allowed: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    if name in QUIET_COMMANDS and "--verbose" not in rest:
        os.environ["TQDM_DISABLE"] = "1"  # before torch imports tqdm: tqdm reads its defaults at import
        from .env import quiet_libraries

        quiet_libraries()
    if name in QUIET_COMMANDS and name != "demo":  # demo's own parser takes --verbose; the others never see it
        rest = [a for a in rest if a != "--verbose"]
    module = importlib.import_module(COMMANDS[name][0])
    try:
        return int(module.main(rest) or 0)
    except USER_ERRORS as error:  # bad input: the message names the parameter; no traceback unless asked
        if os.environ.get("DLLMQ_TRACEBACK"):
            raise
        print(f"dllmq {name}: error: {error}\n(set DLLMQ_TRACEBACK=1 for the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
