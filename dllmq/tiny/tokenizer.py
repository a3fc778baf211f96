"""The byte-level BPE tokenizer of the trained tiny dLLM, trained on a fixed sample of the tiny corpus.

It shares the kit's special tokens and ids with the character tokenizer of the random test models
(`dllmq.models.tokenizers`).
"""
from __future__ import annotations

import functools

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from ..models.tokenizers import BOS_ID, CHARS, EOS_ID, MASK_ID, PAD_ID, SPECIALS, build_char_tokenizer, wrap_tokenizer

__all__ = ["BOS_ID", "CHARS", "EOS_ID", "MASK_ID", "PAD_ID", "SPECIALS", "build_char_tokenizer", "build_tiny_tokenizer",
           "TINY_VOCAB_SIZE", "TOKENIZER_SEED"]


# --- the word-piece tokenizer of the trained tiny model ---------------------------------------------------
TINY_VOCAB_SIZE = 1280
TOKENIZER_SEED = 1234  # the tokenizer depends on this fixed corpus sample, not on the training seed


def build_tiny_tokenizer(vocab_size: int = TINY_VOCAB_SIZE, n_texts: int = 20000) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on a fixed sample of the tiny corpus; digits are always single tokens.

    Byte-level BPE covers any text (nothing is unknown); the corpus words end up as whole tokens, and
    splitting digits lets the model learn arithmetic digit by digit. Deterministic; built once per process."""
    return wrap_tokenizer(Tokenizer.from_str(_trained_bpe(vocab_size, n_texts)))


@functools.lru_cache(maxsize=4)
def _trained_bpe(vocab_size: int, n_texts: int) -> str:
    """The trained `tokenizers` BPE as a JSON string (cached: training takes a few seconds)."""
    from tokenizers import trainers

    from .corpus import sample_texts

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    even = {"general": 1.0, "math": 1.0, "code": 1.0}  # fixed, so the vocabulary does not follow the training mix
    tok.train_from_iterator(sample_texts(n_texts, seed=TOKENIZER_SEED, mix=even), trainer=trainer)
    return tok.to_str()
