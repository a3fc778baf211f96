"""A character-level tokenizer for the embedded tiny dLLM, built with `tokenizers` and wrapped as a
transformers `PreTrainedTokenizerFast`, so it saves and loads like any hub tokenizer (no remote code).

Every printable ASCII character plus newline and tab is one token; ids 0-3 are special.
"""
from __future__ import annotations

import functools
import string

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

SPECIALS = ["<|pad|>", "<|bos|>", "<|eos|>", "<|mask|>"]
PAD_ID, BOS_ID, EOS_ID, MASK_ID = range(4)
CHARS = sorted(set(string.printable) - set("\r\x0b\x0c"))


def build_char_tokenizer() -> PreTrainedTokenizerFast:
    """A fresh character tokenizer: specials first, then the sorted character set."""
    vocab = {tok: i for i, tok in enumerate(SPECIALS + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="?"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=SPECIALS[PAD_ID], bos_token=SPECIALS[BOS_ID],
        eos_token=SPECIALS[EOS_ID], mask_token=SPECIALS[MASK_ID], padding_side="left",
    )


# --- the word-piece tokenizer of the trained tiny model ---------------------------------------------------
TINY_VOCAB_SIZE = 1280
TOKENIZER_SEED = 1234  # the tokenizer depends on this fixed corpus sample, not on the training seed


def build_tiny_tokenizer(vocab_size: int = TINY_VOCAB_SIZE, n_texts: int = 20000) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on a fixed sample of the tiny corpus; digits are always single tokens.

    Byte-level BPE covers any text (nothing is unknown); the corpus words end up as whole tokens, and
    splitting digits lets the model learn arithmetic digit by digit. Deterministic; built once per process."""
    tok = Tokenizer.from_str(_trained_bpe(vocab_size, n_texts))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=SPECIALS[PAD_ID], bos_token=SPECIALS[BOS_ID],
        eos_token=SPECIALS[EOS_ID], mask_token=SPECIALS[MASK_ID], padding_side="left",
    )


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
