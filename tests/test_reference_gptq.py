"""GPTQ against IST-DASLab/gptq (`quant.py` Quantizer, `gptq.py` fasterquant), restated here, and the grid
of each GPTQ preset (the paper's asymmetric grid; the released code's AutoGPTQ sym=True grid).

The IST quantizer, per row: lo = min(row, 0), hi = max(row, 0); symmetric: hi = max(|lo|, hi) and, where
lo < 0, lo = -hi; a row of zeros becomes [-1, 1]; scale = (hi - lo) / (2^b - 1); zero = 2^(b-1) when
symmetric, round(-lo / scale) otherwise; codes clamp(round(x / scale) + zero, 0, 2^b - 1).
fasterquant: dead inputs pinned, optional static groups from the original W, optional act-order, 1% damping,
Hinv = upper Cholesky factor of the inverse (through `cholesky_inverse`), column-wise error feedback inside
lazy blocks of 128 columns, group parameters refreshed from the (lazily updated) W at each group start.
"""
import pytest
import torch

from dllmq.quant import Recipe
from dllmq.quant.gptq import gptq_quantize
from dllmq.quant.quantizer import QuantSpec, quantize_tensor


def _ist_params(x, bits, sym):
    maxq = 2 ** bits - 1
    zeros = torch.zeros(x.shape[0])
    lo, hi = torch.minimum(x.min(1).values, zeros), torch.maximum(x.max(1).values, zeros)
    if sym:
        hi = torch.maximum(lo.abs(), hi)
        neg = lo < 0
        lo[neg] = -hi[neg]
    empty = (lo == 0) & (hi == 0)
    lo[empty], hi[empty] = -1.0, 1.0
    scale = (hi - lo) / maxq
    zero = torch.full_like(scale, (maxq + 1) / 2) if sym else torch.round(-lo / scale)
    return scale[:, None], zero[:, None]


def _ist_codes(x, scale, zero, bits):
    return torch.clamp(torch.round(x / scale) + zero, 0, 2 ** bits - 1)


def _ist_fasterquant(W, H, bits, sym, groupsize=-1, actorder=False, static_groups=False, blocksize=128,
                     percdamp=0.01):
    W, H = W.clone().float(), H.clone().float()
    n = W.shape[1]
    params = _ist_params(W, bits, sym)
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    groups = [_ist_params(W[:, i:i + groupsize], bits, sym) for i in range(0, n, groupsize)] if static_groups else None
    if actorder:
        perm = torch.argsort(torch.diag(H), descending=True)
        W, H = W[:, perm], H[perm][:, perm]
    H[range(n), range(n)] += percdamp * torch.mean(torch.diag(H))
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    Q = torch.zeros_like(W)
    for i1 in range(0, n, blocksize):
        i2 = min(i1 + blocksize, n)
        W1, Err1, Hinv1 = W[:, i1:i2].clone(), torch.zeros(W.shape[0], i2 - i1), Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            w, d = W1[:, i], Hinv1[i, i]
            if groupsize != -1:
                if static_groups:
                    idx = int(perm[i1 + i]) if actorder else i1 + i
                    params = groups[idx // groupsize]
                elif (i1 + i) % groupsize == 0:
                    params = _ist_params(W[:, i1 + i:i1 + i + groupsize], bits, sym)
            scale, zero = params
            q = (scale * (_ist_codes(w[:, None], scale, zero, bits) - zero)).flatten()
            Q[:, i1 + i] = q
            err = (w - q) / d
            W1[:, i:] -= err[:, None] @ Hinv1[i, i:][None, :]
            Err1[:, i] = err
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return Q[:, torch.argsort(perm)] if actorder else Q


def _layer(seed=0, n_in=256, n_out=32, tokens=1024):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, n_in, generator=g) @ (torch.eye(n_in) + torch.randn(n_in, n_in, generator=g) / n_in ** 0.5)
    x[:, 7] *= 15  # a salient input
    x[:, [3, 200]] = 0  # dead inputs
    return torch.randn(n_out, n_in, generator=g), 2 * x.T @ x / tokens


PRESETS = {"paper": Recipe.paper("gptq", "w4a16g128"), "code": Recipe.paper("gptq", "w4a16g128", variant="code")}


def test_presets_use_the_documented_grids():
    paper = PRESETS["paper"].weight_spec(include_zero=True)
    code = PRESETS["code"].weight_spec(include_zero=True)
    assert (paper.sym, paper.include_zero) == (False, True)
    assert (code.sym, code.sym_convention) == (True, "gptq") and (code.qmin, code.qmax) == (0, 15)


@pytest.mark.parametrize("variant", ["paper", "code"])
def test_preset_grid_codes_equal_ist_quantizer(variant):
    spec = PRESETS[variant].weight_spec(include_zero=True)
    w = torch.randn(64, 256, generator=torch.Generator().manual_seed(1))
    w[5] = 0.0  # an empty row: IST's [-1, 1]
    codes, _ = quantize_tensor(w, spec)
    rows = w.reshape(-1, 128)
    scale, zero = _ist_params(rows, 4, sym=spec.sym)
    assert torch.equal(codes.reshape(-1, 128), _ist_codes(rows, scale, zero, 4))


def test_signed_and_ist_symmetric_grids_differ():
    """The kit's default symmetric grid (signed, absmax / 7) is not AutoGPTQ's (2·absmax / 15, zero 8)."""
    w = torch.randn(64, 256, generator=torch.Generator().manual_seed(2))
    signed = QuantSpec(4, sym=True, granularity="group", group_size=128)
    ist = QuantSpec(4, sym=True, granularity="group", group_size=128, sym_convention="gptq")
    from dllmq.quant.quantizer import fake_quantize
    same = float((fake_quantize(w, signed) == fake_quantize(w, ist)).float().mean())  # identical dequantized
    assert same < 0.3, same


def test_ist_symmetric_quirk_on_rows_without_negatives():
    """Known difference, kept: on a row with no negative entry IST keeps lo = 0, so scale = max / 15 with the
    zero at 8 and everything above 7/15 of the max is clipped; the kit's "gptq" grid uses 2·max / 15."""
    row = torch.tensor([[0.1, 0.5, 1.0, 2.0]])
    scale, zero = _ist_params(row.clone(), 4, sym=True)
    assert float(scale) == pytest.approx(2.0 / 15)
    codes, qp = quantize_tensor(row, QuantSpec(4, sym=True, granularity="channel", sym_convention="gptq"))
    assert float(qp.scale) == pytest.approx(2 * 2.0 / 15)
    ist_values = scale * (_ist_codes(row, scale, zero, 4) - zero)
    assert float(ist_values.max()) == pytest.approx(7 * 2.0 / 15)  # 1.0 and 2.0 both clipped to 0.93
    assert float(qp.fake_quantize(row).max()) == pytest.approx(7 * 4.0 / 15)  # 1.87: 2.0 keeps its own level


@pytest.mark.parametrize("variant", ["paper", "code"])
@pytest.mark.parametrize("group,act_order,static", [(None, False, False), (None, True, False), (128, False, False),
                                                    (128, True, False), (128, True, True), (128, False, True)])
def test_gptq_weights_equal_ist_fasterquant(variant, group, act_order, static):
    spec = PRESETS[variant].with_(group_size=group).weight_spec(include_zero=True)
    W, H = _layer()
    ours = gptq_quantize(W, H, spec, act_order=act_order, static_groups=static).weight
    ref = _ist_fasterquant(W, H, 4, spec.sym, groupsize=group or -1, actorder=act_order, static_groups=static)
    # cholesky_solve (dllmq) vs cholesky_inverse (IST) differ only in the last bits: no code differs
    assert torch.allclose(ours, ref, rtol=0, atol=1e-5)
    assert torch.equal(ours[:, [3, 200]], torch.zeros(32, 2))
