"""Checkers for notebook 02 (activation outliers). Each returns a scored CheckResult (scoring.py)."""
from __future__ import annotations

import torch

from ..activations.token_quant import fake_quant_per_token
from .scoring import scored


@scored("nb02_ex1", points=2)
def check_fake_quant(student_fq) -> str:
    """Exercise 1: `student_fq(x, bits)` = asymmetric per-token round-to-nearest fake quantization."""
    g = torch.Generator().manual_seed(0)
    cases = [torch.randn(6, 32, generator=g) * 2 + 0.3, torch.rand(3, 16, generator=g) + 1.0,
             -torch.rand(3, 16, generator=g), torch.randn(2, 64, generator=g)]
    cases[3][1, 7] = 500.0  # a massive entry
    for x in cases:
        for bits in (8, 4, 3):
            got = student_fq(x.clone(), bits)
            assert tuple(got.shape) == tuple(x.shape), f"the output must keep the shape {tuple(x.shape)}"
            want = fake_quant_per_token(x, bits)
            if not torch.allclose(got.float(), want, atol=1e-4, rtol=1e-4):
                if torch.allclose(got.float(), fake_quant_per_token(x.T, bits).T, atol=1e-4, rtol=1e-4):
                    raise AssertionError("you quantized each COLUMN (channel) with its own scale: quantize each "
                                         "ROW (token), i.e. reduce min/max over the last dimension")
                levels = int(torch.unique(got[0]).numel())
                assert levels <= 2 ** bits, (f"a row has {levels} distinct values; {bits} bits allow at most "
                                             f"{2 ** bits}: quantize each ROW (token) with its own scale")
                raise AssertionError(
                    f"wrong values at {bits} bits. Per token: lo = min(min(x), 0), hi = max(max(x), 0), "
                    f"scale = (hi - lo) / (2^bits - 1), zero = round(-lo / scale), "
                    f"q = clamp(round(x / scale) + zero, 0, 2^bits - 1), x_hat = (q - zero) * scale")
    return "correct: one scale and zero point per token, the range always contains 0"


@scored("nb02_ex2", points=2)
def check_is_massive(student_is_massive) -> str:
    """Exercise 2: `student_is_massive(x) -> bool`: does x hold a massive activation (Sun et al. 2024)?"""
    g = torch.Generator().manual_seed(1)
    base = torch.randn(64, 128, generator=g)
    cases = []
    x = base.clone(); x[3, 9] = 2500.0; cases.append((x, True, "one entry of 2500 among N(0, 1) values"))
    x = base.clone(); x[:, 5] = 30.0; cases.append((x, False, "a whole channel at 30 (a normal outlier, < 100)"))
    x = base * 200; cases.append((x, False, "everything scaled by 200: large, but no entry is 1000x the median"))
    x = base * 0.01; x[0, 0] = 50.0; cases.append((x, False, "5000x the median but below 100 in absolute value"))
    x = -base.clone(); x[10, 2] = -900.0; cases.append((x, True, "a NEGATIVE entry of -900 (use |x|)"))
    for x, want, what in cases:
        got = bool(student_is_massive(x.clone()))
        assert got == want, (f"{what}: expected {want}, got {got}. Massive means |x| >= 100 AND "
                             f"|x| >= 1000 x median(|x|) (the median over all entries of the tensor)")
    return "correct: both conditions (absolute >= 100 and relative >= 1000x the median) are needed"


@scored("nb02_ex3", points=1)
def check_massive_layer(answer_layer: int, stats) -> str:
    """Exercise 3: the block whose down-projection input holds the largest activation in `stats`."""
    frame = stats.frame()
    down = frame[frame["role"] == "down"]
    want = int(down.loc[down["absmax"].idxmax(), "layer"])
    assert isinstance(answer_layer, int), f"answer with a block index (int), got {type(answer_layer).__name__}"
    if answer_layer != want:
        got = down[down["layer"] == answer_layer]["absmax"]
        seen = f" (its down input peaks at {float(got.iloc[0]):.1f})" if len(got) else ""
        raise AssertionError(f"layer {answer_layer}{seen} is not the one: sort stats.frame() rows with "
                             f"role == 'down' by 'absmax'")
    return f"correct: layer {want}, absmax {float(down['absmax'].max()):.0f}"
