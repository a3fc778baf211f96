"""Hadamard matrices are orthogonal, the fast transform equals the dense product, unsupported sizes fail loudly."""
import math

import pytest
import torch

from dllmq.quant.hadamard import (HadamardRotation, UnsupportedHadamardSize, fwht, hadamard_factor,
                                  hadamard_matrix, hadamard_transform, is_supported, largest_hadamard_divisor,
                                  paley_hadamard, random_orthogonal_matrix)


def _eye(n):
    return torch.eye(n, dtype=torch.float64)


@pytest.mark.parametrize("k", [4, 8, 12, 20, 24, 28, 36, 44, 60, 108, 148, 684])
def test_paley_matrices_are_hadamard(k):
    H = paley_hadamard(k)
    assert H.shape == (k, k) and set(H.unique().tolist()) == {-1, 1}
    assert torch.equal(H @ H.T, k * torch.eye(k, dtype=torch.int64))


def test_fwht_matches_the_sylvester_definition():
    # Independent definition of Sylvester's matrix: H[b, d] = (-1)^popcount(b & d).
    n = 64
    idx = torch.arange(n)
    bits = (idx[:, None] & idx[None, :])
    pop = torch.zeros_like(bits)
    for j in range(6):
        pop += (bits >> j) & 1
    H = (1 - 2 * (pop % 2)).double()
    x = torch.randn(5, n, dtype=torch.float64)
    assert torch.allclose(fwht(x), x @ H, atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 12, 16, 20, 28, 36, 64, 128, 148, 576, 1024])
def test_dense_hadamard_is_orthogonal(n):
    H = hadamard_matrix(n)
    assert torch.allclose(H @ H.T, _eye(n), atol=1e-12)
    assert torch.allclose(H.abs(), torch.full_like(H, 1 / math.sqrt(n)))  # flat: spreads any channel evenly


@pytest.mark.parametrize("n", [128, 1024, 4096])
def test_fast_transform_equals_dense_product(n):
    x = torch.randn(4, n, dtype=torch.float64)
    H = hadamard_matrix(n)
    assert torch.allclose(hadamard_transform(x), x @ H, atol=1e-10)
    assert torch.allclose(hadamard_transform(x, transpose=True), x @ H.T, atol=1e-10)


def test_fast_transform_12288_equals_dense_rows_and_is_orthogonal():
    n = 12288
    assert hadamard_factor(n) == (12, 1024)  # LLaDA-8B: had12 ⊗ H_1024, as QuaRot uses
    rows = torch.tensor([0, 1, 1023, 1024, 5000, 12287])
    E = torch.zeros(len(rows), n, dtype=torch.float64)
    E[torch.arange(len(rows)), rows] = 1
    fast_rows = hadamard_transform(E)  # e_i @ H = row i of H
    A = paley_hadamard(12).double()
    B = hadamard_matrix(1024, normalized=False)
    dense_rows = torch.stack([torch.kron(A[i // 1024], B[i % 1024]) for i in rows.tolist()]) / math.sqrt(n)
    assert torch.allclose(fast_rows, dense_rows, atol=1e-12)
    x = torch.randn(3, n, dtype=torch.float64)
    y = hadamard_transform(x)
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1))  # isometry
    assert torch.allclose(hadamard_transform(y, transpose=True), x, atol=1e-10)  # Hᵀ H = I


def test_sizes_of_the_paper_models():
    assert hadamard_factor(4096) == (1, 4096)
    assert hadamard_factor(3584) == (28, 128)  # Dream hidden
    assert hadamard_factor(18944) == (148, 128)  # Dream intermediate via Paley II (q = 73)
    assert hadamard_factor(576) == (36, 16)  # SmolLM2 hidden
    assert hadamard_factor(1536) == (12, 128)  # SmolLM2 intermediate


def test_unsupported_size_gives_a_clear_error():
    assert not is_supported(13696) and not is_supported(9)
    with pytest.raises(UnsupportedHadamardSize, match="hadamard_fallback"):
        hadamard_matrix(13696)
    with pytest.raises(UnsupportedHadamardSize, match="hadamard_fallback"):
        HadamardRotation(13696)
    with pytest.raises(UnsupportedHadamardSize, match="orthogonal"):
        HadamardRotation(9, fallback="block")  # the block alternative would be the identity
    with pytest.raises(ValueError, match="hadamard_fallback"):
        HadamardRotation(64, fallback="nearest")


def test_explicit_alternatives_are_orthogonal():
    assert largest_hadamard_divisor(13696) == 128
    block = HadamardRotation(13696, fallback="block")
    assert block.kind == "block" and block.block == 128
    x = torch.randn(2, 13696)
    assert torch.allclose(block(x).norm(dim=-1), x.norm(dim=-1), rtol=1e-5)
    orth = HadamardRotation(9, fallback="orthogonal", seed=3)
    M = orth.matrix()
    assert torch.allclose(M @ M.T, _eye(9), atol=1e-6)
    Q = random_orthogonal_matrix(9, seed=3)
    assert torch.allclose(Q @ Q.T, _eye(9), atol=1e-12)


@pytest.mark.parametrize("n,inner,fallback", [(64, 1, None), (12, 1, None), (4, 16, None), (9, 8, "orthogonal"),
                                              (24, 2, "block"), (48, 1, None)])
def test_rotation_module_equals_its_matrix(n, inner, fallback):
    rot = HadamardRotation(n, inner=inner, fallback=fallback)
    x = torch.randn(3, 5, n * inner)
    M = rot.matrix(torch.float64)
    assert torch.allclose(M @ M.T, _eye(n * inner), atol=1e-6)
    assert torch.allclose(rot(x).double(), x.double() @ M, atol=1e-5)


def test_rotation_spreads_a_single_outlier():
    x = torch.zeros(1, 1024)
    x[0, 7] = 100.0
    y = hadamard_transform(x)
    assert torch.allclose(y.abs(), torch.full_like(y, 100 / 32))  # 100/√1024 on every channel
