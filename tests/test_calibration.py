"""Calibration sets: the offline sources, the hub draws (on stand-in datasets), masking, clear errors."""
import random

import pytest
import torch

from dllmq import calibration as cal
from dllmq.calibration import OfflineError, get_calibration, load_text, mask_tokens
from dllmq.models.tokenizers import build_char_tokenizer


@pytest.fixture(scope="module")
def tok():
    return build_char_tokenizer()


def test_text_windows_are_reproducible_slices(tok):
    ids = get_calibration("text", tok, n_samples=6, seq_len=100, seed=0)
    assert ids.shape == (6, 100) and ids.dtype == torch.long
    assert torch.equal(ids, get_calibration("text", tok, n_samples=6, seq_len=100, seed=0))
    assert not torch.equal(ids, get_calibration("text", tok, n_samples=6, seq_len=100, seed=1))
    text = load_text("train")
    for row in ids:
        assert tok.decode(row) in text
    assert tok.mask_token_id not in ids


def test_held_out_text_is_separate():
    train, test = load_text("train"), load_text("test")
    assert len(train) > 4000 and len(test) > 2000 and test[:200] not in train
    with pytest.raises(ValueError, match="split"):
        load_text("valid")


def test_tiny_corpus_source(tok):
    ids = get_calibration("tiny", tok, n_samples=4, seq_len=128, seed=3)
    assert ids.shape == (4, 128)
    assert torch.equal(ids, get_calibration("tiny", tok, n_samples=4, seq_len=128, seed=3))


def test_masking(tok):
    clean = get_calibration("text", tok, n_samples=64, seq_len=64, seed=0)
    m = tok.mask_token_id
    assert (get_calibration("text", tok, 64, 64, mask_ratio=1.0) == m).all()
    half = (mask_tokens(clean, 0.5, m, seed=0) == m).float().mean().item()
    assert 0.45 < half < 0.55
    per_row = (mask_tokens(clean, "uniform", m, seed=0) == m).float().mean(1)
    assert per_row.std() > 0.15 and per_row.min() < 0.2 and per_row.max() > 0.8
    unmasked = mask_tokens(clean, 0.5, m) != m
    assert torch.equal(mask_tokens(clean, 0.5, m)[unmasked], clean[unmasked])
    with pytest.raises(ValueError, match="mask_ratio"):
        mask_tokens(clean, 1.5, m)


def test_mask_needs_a_mask_token(tok):
    class NoMask:
        mask_token_id = None

        def __call__(self, text, **kw):
            return tok(text, **kw)

    with pytest.raises(ValueError, match="mask_token_id"):
        get_calibration("text", NoMask(), 2, 16, mask_ratio=0.5)
    assert (get_calibration("text", NoMask(), 2, 16, mask_ratio=1.0, mask_token_id=7) == 7).all()


@pytest.mark.parametrize("source", ["wikitext2", "pileval", "c4"])
def test_offline_mode_names_the_alternatives(source, tok, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="'text'.*'tiny'"):
        get_calibration(source, tok, 2, 16)


def test_bad_arguments(tok):
    with pytest.raises(ValueError, match="source"):
        get_calibration("books", tok, 2, 16)
    with pytest.raises(ValueError, match="n_samples"):
        get_calibration("text", tok, 0, 16)
    with pytest.raises(ValueError, match="seq_len"):
        get_calibration("text", tok, 2, 100_000)


class FakeDataset(list):
    """Stands in for a `datasets` split: rows, column access, shuffle(seed)."""

    def __getitem__(self, key):
        if key == "text":
            return [row["text"] for row in self]
        return list.__getitem__(self, key)

    def shuffle(self, seed):
        rows = list(self)
        random.Random(seed).shuffle(rows)
        return FakeDataset(rows)


def test_hub_draws_follow_the_reference_code(tok, monkeypatch):
    lines = [("line %d " % i) * (i % 7 + 1) for i in range(200)]
    data = FakeDataset({"text": t} for t in lines)
    monkeypatch.setattr(cal, "_load_hub", lambda source, *a, **k: data)
    # wikitext2: windows of the "\n\n"-joined split, starts from random.Random(seed)
    stream = cal._encode(tok, "\n\n".join(lines))
    ids = get_calibration("wikitext2", tok, n_samples=3, seq_len=50, seed=0)
    rng = random.Random(0)
    starts = [rng.randint(0, stream.numel() - 51) for _ in range(3)]
    assert torch.equal(ids, torch.stack([stream[s:s + 50] for s in starts]))
    # c4: only documents longer than the window
    c4 = get_calibration("c4", tok, n_samples=4, seq_len=40, seed=0)
    assert c4.shape == (4, 40) and all(any(tok.decode(r) in t for t in lines if len(t) > 40) for r in c4)
    # pileval: lines <= seq_len tokens, concatenated, cut into blocks (fewer than n_samples)
    pv = get_calibration("pileval", tok, n_samples=10, seq_len=32, seed=42)
    kept = [cal._encode(tok, r["text"].strip()) for r in data.shuffle(42)]
    kept = [k for k in kept if 0 < k.numel() <= 32][:10]
    flat = torch.cat(kept)
    assert pv.shape == (flat.numel() // 32, 32) and torch.equal(pv.flatten(), flat[: pv.numel()])


def test_calibration_for_recipe(tok):
    from dllmq.calibration import calibration_for
    from dllmq.quant import Recipe

    ids = calibration_for(Recipe.parse("gptq:w4a16g128:calib=text,n=3,len=20,seed=2"), tok)
    assert torch.equal(ids, get_calibration("text", tok, 3, 20, seed=2))
