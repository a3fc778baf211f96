"""QuaRot's Hadamard matrices against spcl/QuaRot (`hadamard_utils.py`: get_hadK, matmul_hadU,
random_hadamard_matrix), restated here.

matmul_hadU, in our words: view x as (rows, n, 1); while the middle axis is longer than K, split it into
adjacent pairs (a, b) and replace them by (a + b) followed by (a - b) along the last axis; then multiply the
remaining K-long axis by the stored K×K matrix; scale by 1/sqrt(n). The stored K×K matrices come from Sloane's
library; dllmq builds Paley matrices instead: for n = 2^m and K = 12, 20 the matrices are identical, for K = 28,
36 they agree up to signed permutations of the K axis (`_equivalence` finds them).
"""
from collections import Counter

import pytest
import torch

from dllmq.quant.hadamard import hadamard_factor, hadamard_matrix, hadamard_transform, is_supported, paley_hadamard
from dllmq.quant.quarot import residual_rotation
from dllmq.quant.hadamard import random_signs

QUAROT_HAD = {  # QuaRot's stored matrices (hadamard_utils.get_had12/20/28/36), one row per line
    12: """
        +-----------
        ++-+---+++-+
        +++-+---+++-
        +-++-+---+++
        ++-++-+---++
        +++-++-+---+
        ++++-++-+---
        +-+++-++-+--
        +--+++-++-+-
        +---+++-++-+
        ++---+++-++-
        +-+---+++-++
    """,
    20: """
        +-------------------
        ++-++----+-+-++++--+
        +++-++----+-+-++++--
        +-++-++----+-+-++++-
        +--++-++----+-+-++++
        ++--++-++----+-+-+++
        +++--++-++----+-+-++
        ++++--++-++----+-+-+
        +++++--++-++----+-+-
        +-++++--++-++----+-+
        ++-++++--++-++----+-
        +-+-++++--++-++----+
        ++-+-++++--++-++----
        +-+-+-++++--++-++---
        +--+-+-++++--++-++--
        +---+-+-++++--++-++-
        +----+-+-++++--++-++
        ++----+-+-++++--++-+
        +++----+-+-++++--++-
        +-++----+-+-++++--++
    """,
    28: """
        ++++++++++++++-+++++++++++++
        +++-++----++-++-+-++----++-+
        ++++-++----++-++-+-++----++-
        +-+++-++----+++-+-+-++----++
        ++-+++-++----+++-+-+-++----+
        +++-+++-++----+++-+-+-++----
        +-++-+++-++---+-++-+-+-++---
        +--++-+++-++--+--++-+-+-++--
        +---++-+++-++-+---++-+-+-++-
        +----++-+++-+++----++-+-+-++
        ++----++-+++-+++----++-+-+-+
        +++----++-+++-+++----++-+-+-
        +-++----++-++++-++----++-+-+
        ++-++----++-++++-++----++-+-
        -+++++++++++++--------------
        +-+-++----++-+---+--++++--+-
        ++-+-++----++-----+--++++--+
        +-+-+-++----++-+---+--++++--
        ++-+-+-++----+--+---+--++++-
        +++-+-+-++-------+---+--++++
        +-++-+-+-++----+--+---+--+++
        +--++-+-+-++---++--+---+--++
        +---++-+-+-++--+++--+---+--+
        +----++-+-+-++-++++--+---+--
        ++----++-+-+-+--++++--+---+-
        +++----++-+-+----++++--+---+
        +-++----++-+-+-+--++++--+---
        ++-++----++-+---+--++++--+--
    """,
    36: """
        ++++++++++++++++++-+++++++++++++++++
        ++++-+---++---+-+++-++-+---++---+-++
        +++++-+---++---+-+++-++-+---++---+-+
        ++++++-+---++---+-+++-++-+---++---+-
        +-+++++-+---++---++-++-++-+---++---+
        ++-+++++-+---++---++-++-++-+---++---
        +-+-+++++-+---++--+-+-++-++-+---++--
        +--+-+++++-+---++-+--+-++-++-+---++-
        +---+-+++++-+---+++---+-++-++-+---++
        ++---+-+++++-+---+++---+-++-++-+---+
        +++---+-+++++-+---+++---+-++-++-+---
        +-++---+-+++++-+--+-++---+-++-++-+--
        +--++---+-+++++-+-+--++---+-++-++-+-
        +---++---+-+++++-++---++---+-++-++-+
        ++---++---+-+++++-++---++---+-++-++-
        +-+---++---+-++++++-+---++---+-++-++
        ++-+---++---+-++++++-+---++---+-++-+
        +++-+---++---+-++++++-+---++---+-++-
        -+++++++++++++++++------------------
        +-++-+---++---+-++----+-+++--+++-+--
        ++-++-+---++---+-+-----+-+++--+++-+-
        +++-++-+---++---+-------+-+++--+++-+
        +-++-++-+---++---+-+-----+-+++--+++-
        ++-++-++-+---++-----+-----+-+++--+++
        +-+-++-++-+---++---+-+-----+-+++--++
        +--+-++-++-+---++--++-+-----+-+++--+
        +---+-++-++-+---++-+++-+-----+-+++--
        ++---+-++-++-+---+--+++-+-----+-+++-
        +++---+-++-++-+------+++-+-----+-+++
        +-++---+-++-++-+---+--+++-+-----+-++
        +--++---+-++-++-+--++--+++-+-----+-+
        +---++---+-++-++-+-+++--+++-+-----+-
        ++---++---+-++-++---+++--+++-+-----+
        +-+---++---+-++-++-+-+++--+++-+-----
        ++-+---++---+-++-+--+-+++--+++-+----
        +++-+---++---+-++----+-+++--+++-+---
    """,
}


def _stored(k):
    rows = QUAROT_HAD[k].split()
    return torch.tensor([[1.0 if c == "+" else -1.0 for c in r] for r in rows], dtype=torch.float64)


def _ref_had_u(x, had_k=None):
    n = x.shape[-1]
    K = 1 if had_k is None else had_k.shape[0]
    y = x.reshape(-1, n, 1)
    while y.shape[1] > K:
        pairs = y.reshape(y.shape[0], y.shape[1] // 2, 2, y.shape[-1])
        y = torch.cat([pairs[:, :, 0] + pairs[:, :, 1], pairs[:, :, 0] - pairs[:, :, 1]], dim=-1)
    if K > 1:
        y = had_k.to(y) @ y
    return y.reshape(x.shape) / n ** 0.5


def _equivalence(A, B):
    """Signed permutations (P, Q) with P A Q = B for ±1 Hadamard matrices A, B, or None (backtracking on rows;
    columns are matched by their sign pattern over the rows placed so far)."""
    n = A.shape[0]
    A, B = A.long(), B.long()
    Bn = B * B[0][None, :]  # row 0 of B normalised to +1 (column signs absorbed)
    for first in range(n):
        An = A * A[first][None, :]

        def place(i, used, rows, signs, code_a, code_b):
            if i == n:
                return rows, signs, code_a, code_b
            nb = code_b * 2 + (Bn[i] > 0)
            want = Counter(nb.tolist())
            for r in range(n):
                if r in used:
                    continue
                for s in (1, -1):
                    na = code_a * 2 + (s * An[r] > 0)
                    if Counter(na.tolist()) == want:
                        found = place(i + 1, used | {r}, rows + [r], signs + [s], na, nb)
                        if found:
                            return found
            return None

        ones = torch.ones(n, dtype=torch.long)
        found = place(1, {first}, [first], [1], ones, ones)
        if found:
            rows, signs, code_a, code_b = found
            where = {c: j for j, c in enumerate(code_a.tolist())}
            P, Q = torch.zeros(n, n, dtype=torch.long), torch.zeros(n, n, dtype=torch.long)
            for i, (r, s) in enumerate(zip(rows, signs)):
                P[i, r] = s
            for j, c in enumerate(code_b.tolist()):
                Q[where[c], j] = 1
            Q = Q * (P @ A @ Q * B).sum(0).sign()[None, :]
            return P, Q
    return None


@pytest.mark.parametrize("n", [2, 64, 1024, 4096])
def test_power_of_two_orders_are_identical(n):
    if n <= 1024:
        eye = torch.eye(n, dtype=torch.float64)
        assert torch.allclose(hadamard_matrix(n), _ref_had_u(eye), atol=1e-12, rtol=0)
    x = torch.randn(3, n, dtype=torch.float64)
    assert torch.allclose(hadamard_transform(x), _ref_had_u(x), atol=1e-10, rtol=0)


def test_transcribed_matrices_are_hadamard():
    for k in QUAROT_HAD:
        H = _stored(k)
        assert torch.equal(H @ H.T, k * torch.eye(k, dtype=torch.float64)), k


@pytest.mark.parametrize("k,same", [(12, True), (20, True), (28, False), (36, False)])
def test_k_times_power_of_two_orders_are_identical_or_equivalent(k, same):
    """12 and 20 (LLaDA's 12288 = 12·1024): the very matrix QuaRot uses. 28 (Dream's hidden 3584) and 36
    (SmolLM2's 576): another matrix, equal up to signed permutations of the K axis."""
    p = 16
    n = k * p  # 12·16 = 192, ..., 36·16 = 576 (SmolLM2's hidden size)
    ref = _ref_had_u(torch.eye(n, dtype=torch.float64), _stored(k))
    H_p = hadamard_matrix(p)
    assert torch.allclose(ref, torch.kron(_stored(k).T.contiguous(), H_p) / k ** 0.5, atol=1e-12)  # K on the slow axis, transposed
    assert torch.allclose(hadamard_matrix(n), ref, atol=1e-12) == same
    P, Q = _equivalence(_stored(k).T.contiguous(), paley_hadamard(k))  # equal up to signed permutations
    I_p = torch.eye(p, dtype=torch.float64)
    assert torch.allclose(torch.kron(P.double(), I_p) @ ref @ torch.kron(Q.double(), I_p), hadamard_matrix(n), atol=1e-12)


def test_random_residual_rotation_is_random_hadamard_matrix_with_the_same_signs():
    """QuaRot's Q = matmul_hadU(diag(D)); dllmq's residual_rotation draws D from its own seeded generator."""
    for n, seed in ((64, 0), (1024, 5)):
        D = random_signs(n, seed)
        assert torch.allclose(residual_rotation(n, "hadamard", seed=seed), _ref_had_u(torch.diag(D)), atol=1e-12)


def test_orders_chosen_for_the_models():
    """get_hadK's K for the sizes of the paper's models and SmolLM2 equals dllmq's factorisation."""
    expected = {4096: 1, 12288: 12, 3584: 28, 576: 36, 1536: 12, 18944: 148, 2048: 1, 8192: 1}
    assert {n: hadamard_factor(n)[0] for n in expected} == expected
    # where QuaRot uses a stored Williamson-type matrix (52, 156, 172) or its stored 40, dllmq factors the size
    # differently (another matrix, not comparable factor by factor); 11008 (LLaMA-2-7B's MLP) needs a dense
    # 5504 Paley factor here
    assert {n: hadamard_factor(n)[0] for n in (52 * 64, 156 * 32, 172 * 64, 40 * 64)} == {
        3328: 104, 4992: 312, 11008: 5504, 2560: 20}
    assert not is_supported(13696)  # neither library has 13696 = 107·128
