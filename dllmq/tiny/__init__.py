"""The embedded tiny dLLM: a LLaDA-architecture model trained here, from scratch, on a procedural corpus.

    lexicon.py      the small closed world (names, things, categories, antonyms, orderings)
    general.py      multiple-choice items (category, antonym, order, lookup, relation, compare)
    arithmetic.py   GSM8K-like word problems with worked answers ending in "#### N"
    coding.py       one-line Python functions from a docstring, with hidden asserts
    items.py        the Item record and the held-out 10% (TinyBench only, never trained on)
    corpus.py       the seeded training stream (SFT rows + pretraining rows)
    tokenizer.py    character tokenizer (random test models) and the byte-level BPE of the tiny model
    objective.py    the LLaDA masked-diffusion loss
    train.py        `python -m dllmq.tiny.train --seed 0 --out DIR` (also `dllmq train-tiny`)
    bench.py        builds the TinyBench jsonl files shipped in dllmq/eval/data/
    card.py         measures a trained model on TinyBench and writes its MODEL_CARD.md
    assets/         the shipped model: `dllmq.load_model("tiny")`
"""
