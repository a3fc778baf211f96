"""DuQuant's rotation and permutation against Hsu1023/DuQuant (`get_rot.py`, `utils.py`, `quantize/quantizer.py`),
restated here on the same activations and, where the reference draws a random matrix, the same base matrix.

* base matrix: Givens rotations of coordinates (i, i+1) with cos 1/sqrt(i+2), applied in turn, coordinates 0 and
  n-1 swapped; at use time multiplied on the right by diag(1, Q) with Q random orthogonal.
* greedy rotation: on the [-1, b] view, take the largest and the smallest entry, record max - min, take the row
  of whichever is larger in magnitude, modulo b, swap coordinate 0 of the base with it in rows and columns and
  multiply; after N steps keep the prefix up to the first minimum of the recorded peaks.
* zigzag: sort channels by max |x| (descending), deal them to the blocks with a pointer that runs 0..K-1, stays
  at K-1, runs back to 0, stays, ...; sort each block descending; concatenate.
* calibration: rotation, zigzag on the rotated activations, rotation; the transform applies them in that order.
"""
import math

import pytest
import torch

from dllmq.models import get_layout
from dllmq.quant import Recipe, quantize
from dllmq.quant.duquant import (calibrate_transform, givens_chain, givens_rotation, greedy_rotation,
                                 zigzag_permutation)

B = 16


def _ref_base(n):
    R = torch.eye(n, dtype=torch.float64)
    for i in range(n - 1):
        rot = torch.eye(n, dtype=torch.float64)
        c, s = 1 / math.sqrt(i + 2), math.sqrt(i + 1) / math.sqrt(i + 2)
        rot[i, i] = rot[i + 1, i + 1] = c
        rot[i, i + 1], rot[i + 1, i] = -s, s
        R = rot @ R
    return _exchange(R, 0, n - 1)


def _exchange(T, i, j):
    idx = torch.arange(T.shape[0])
    idx[i], idx[j] = j, i
    return T[idx][:, idx]


def _ref_rotation(x, b, steps, Rot):
    w = x.reshape(-1, b).clone()
    ids, peaks = [], []
    for _ in range(steps + 1):
        r, c = divmod(int(w.argmax()), b)
        r2, c2 = divmod(int(w.argmin()), b)
        peaks.append(float(w[r, c] - w[r2, c2]))
        ids.append(r if w[r, c].abs() > w[r2, c2].abs() else r2)
        if len(ids) <= steps:
            w = w @ _exchange(Rot, 0, ids[-1] % b)
    keep = int(torch.argmin(torch.tensor(peaks)))
    R = torch.eye(b, dtype=torch.float64)
    for e in ids[:keep]:
        R = R @ _exchange(Rot, 0, e % b)
    return R


def _ref_zigzag(channel_max, b):
    n = channel_max.numel()
    pairs = sorted([(i, float(channel_max[i])) for i in range(n)], key=lambda p: p[1], reverse=True)
    blocks, cur, up = [[] for _ in range(n // b)], 0, True
    for p in pairs:
        blocks[cur].append(p)
        if up:
            cur += 1
            if cur == len(blocks):
                cur, up = cur - 1, False
        else:
            cur -= 1
            if cur == -1:
                cur, up = 0, True
    return torch.tensor([i for blk in blocks for i, _ in sorted(blk, key=lambda p: p[1], reverse=True)])


def _activations(seed=0, tokens=48, channels=64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, channels, generator=g, dtype=torch.float64)
    x[:, 5] *= 25  # a normal outlier channel
    x[7, 40] = 300.0  # a massive outlier in one token
    return x


def test_givens_base_is_get_rot():
    for n in (2, 8, 16, 128):
        assert torch.allclose(givens_chain(n), _ref_base(n), atol=1e-13, rtol=0)
    assert torch.allclose(givens_chain(16)[0], torch.full((16,), 0.25, dtype=torch.float64))
    R = givens_rotation(16, torch.Generator().manual_seed(0))  # G · diag(1, Q): column 0 of G is kept
    assert torch.allclose(R[:, 0], givens_chain(16)[:, 0]) and torch.allclose(R @ R.T, torch.eye(16, dtype=torch.float64))


@pytest.mark.parametrize("steps", [0, 5, 64])
def test_greedy_rotation_with_the_row_index_is_the_references(steps):
    x = _activations()
    Rot = givens_rotation(B, torch.Generator().manual_seed(3))
    ours = greedy_rotation(x, B, steps, index="row", base=Rot)
    assert torch.allclose(ours, _ref_rotation(x, B, steps, Rot), atol=1e-12, rtol=0)


def test_channel_index_differs_from_the_reference():
    x = _activations()
    Rot = givens_rotation(B, torch.Generator().manual_seed(3))
    assert not torch.allclose(greedy_rotation(x, B, 64, index="channel", base=Rot), _ref_rotation(x, B, 64, Rot))


def test_zigzag_is_the_references_including_ties():
    g = torch.Generator().manual_seed(1)
    stats = torch.round(torch.rand(96, generator=g) * 8)  # many ties
    for b in (16, 32, 96):
        assert torch.equal(zigzag_permutation(stats, b), _ref_zigzag(stats, b))


def test_calibration_order_and_transform_are_the_references():
    x = _activations(seed=2)
    Rot = givens_rotation(B, torch.Generator().manual_seed(4))
    t = calibrate_transform(x, B, steps=32, index="row", permutation_times=1, base=Rot)
    R1 = _ref_rotation(x, B, 32, Rot)
    x1 = (x.reshape(-1, B) @ R1).reshape(x.shape)
    perm = _ref_zigzag(x1.abs().max(dim=0).values, B)
    x2 = x1[:, perm]
    R2 = _ref_rotation(x2, B, 32, Rot)
    assert torch.allclose(t.R1.double(), R1, atol=1e-6) and torch.equal(t.perm, perm)
    assert torch.allclose(t.R2.double(), R2, atol=1e-6)
    ref_out = (x2.reshape(-1, B) @ R2).reshape(x.shape)
    assert torch.allclose(t(x), ref_out, atol=1e-6)


def test_attention_inputs_are_clipped_like_the_reference(tiny_llada):
    """The reference quantizes Q and K with the activation quantizer's settings (clip 0.9, after a Hadamard of
    the block size) and V without clipping."""
    model, _ = tiny_llada
    recipe = Recipe.paper("duquant", "w8a8", block_size=16, rotation_steps=4)
    qmodel, _ = quantize(model, recipe, torch.randint(4, 100, (2, 16)))
    attn = get_layout(qmodel).blocks[0].attention.attn_input_quantizer
    clips = (attn.q_quant.spec.clip_ratio, attn.k_quant.spec.clip_ratio, attn.v_quant.spec.clip_ratio)
    assert clips == (0.9, 0.9, 1.0) and attn.qk_rotation is not None
    assert Recipe.paper("duquant", "w8a8", variant="code").knob("greedy_index") == "row"
    assert Recipe.paper("duquant", "w8a8").knob("greedy_index") == "channel"
