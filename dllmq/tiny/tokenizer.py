"""A character-level tokenizer for the embedded tiny dLLM, built with `tokenizers` and wrapped as a
transformers `PreTrainedTokenizerFast`, so it saves and loads like any hub tokenizer (no remote code).

Every printable ASCII character plus newline and tab is one token; ids 0-3 are special.
"""
from __future__ import annotations

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
