"""The kit's own tokenizers, built with `tokenizers` and wrapped as transformers `PreTrainedTokenizerFast`,
so they save and load like any hub tokenizer (no remote code).

`build_char_tokenizer` backs the seeded random test models: every printable ASCII character plus newline
and tab is one token, and ids 0-3 are the special tokens every kit tokenizer shares (the trained tiny
model's byte-level BPE lives with its training code in `dllmq.tiny.tokenizer` and uses the same ids).
"""
from __future__ import annotations

import string

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

SPECIALS = ["<|pad|>", "<|bos|>", "<|eos|>", "<|mask|>"]
PAD_ID, BOS_ID, EOS_ID, MASK_ID = range(4)
CHARS = sorted(set(string.printable) - set("\r\x0b\x0c"))


def wrap_tokenizer(tok: Tokenizer) -> PreTrainedTokenizerFast:
    """A transformers fast tokenizer around `tok` with the kit's special tokens (left padding)."""
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=SPECIALS[PAD_ID], bos_token=SPECIALS[BOS_ID],
        eos_token=SPECIALS[EOS_ID], mask_token=SPECIALS[MASK_ID], padding_side="left",
    )


def build_char_tokenizer() -> PreTrainedTokenizerFast:
    """A fresh character tokenizer: specials first, then the sorted character set."""
    vocab = {tok: i for i, tok in enumerate(SPECIALS + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="?"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return wrap_tokenizer(tok)
