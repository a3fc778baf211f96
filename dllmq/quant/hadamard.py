"""Hadamard matrices of many sizes and the fast Walsh-Hadamard transform (FWHT), for QuaRot-style rotations.

A Hadamard matrix H of order n has entries ±1 and H Hᵀ = n I, so H/√n is orthogonal: rotating by it keeps a
linear layer's output exact (x Wᵀ = (xH)(WH)ᵀ/n) while spreading one large channel over all n channels.

Sizes. Sylvester's doubling gives every power of two. Other orders come from Paley's constructions over
the prime field GF(q) (we construct them here, nothing is copied):
  * Paley I,  q ≡ 3 (mod 4) prime: order q + 1      (q = 11 -> 12, 19 -> 20, 43 -> 44, 683 -> 684, ...)
  * Paley II, q ≡ 1 (mod 4) prime: order 2(q + 1)   (q = 5 -> 12, 13 -> 28, 17 -> 36, 73 -> 148, ...)
A size n is supported when n = K · 2^m with K = 1 or a Paley order; the matrix is H_K ⊗ H_{2^m}, and
x ↦ x H is computed in O(n (K + log n)) by an FWHT on the 2^m axis and a small K×K product on the other.
Examples: LLaDA's 12288 = 12 · 1024, Dream's hidden 3584 = 28 · 128, Dream's 18944 = 148 · 128 (q = 73,
which QuaRot's table of stored matrices lacks), SmolLM2's 576 = 36 · 16.

A size with no such factorisation (e.g. 9, 13696 = 107 · 128) raises `UnsupportedHadamardSize` unless the
caller names an explicit alternative (`fallback`):
  * "block":      block-diagonal I ⊗ H_b with the largest supported b dividing n (fast, orthogonal, but an
                  outlier only spreads within its block of b channels);
  * "orthogonal": a seeded random orthogonal matrix (QR of a Gaussian; dense, O(n²) per token online).
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional

import torch
import torch.nn as nn

from .qlinear import register_module

FALLBACKS = (None, "block", "orthogonal")


class UnsupportedHadamardSize(ValueError):
    """No Hadamard matrix of this order is constructible here and no explicit alternative was chosen."""


# ----------------------------------------------------------------------------- construction


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    return all(n % p for p in range(2, int(math.isqrt(n)) + 1))


def _jacobsthal(q: int) -> torch.Tensor:
    """Q[i, j] = χ(j − i) over GF(q), χ the quadratic character (0 at 0, +1 on squares, −1 otherwise)."""
    chi = torch.full((q,), -1, dtype=torch.int64)
    chi[0] = 0
    chi[torch.tensor(sorted({(a * a) % q for a in range(1, q)}))] = 1
    idx = (torch.arange(q)[None, :] - torch.arange(q)[:, None]) % q  # (q, q): j - i mod q
    return chi[idx]


def _paley_prime(k: int) -> Optional[tuple[str, int]]:
    """("I", q) or ("II", q) when a Paley construction over a prime q gives order k, else None."""
    if k >= 4 and _is_prime(k - 1) and (k - 1) % 4 == 3:
        return "I", k - 1
    if k >= 4 and k % 2 == 0 and _is_prime(k // 2 - 1) and (k // 2 - 1) % 4 == 1:
        return "II", k // 2 - 1
    return None


@lru_cache(maxsize=None)
def paley_hadamard(k: int) -> torch.Tensor:
    """A ±1 Hadamard matrix of order k from Paley I or II (int64); ValueError if neither applies."""
    kind = _paley_prime(k)
    if kind is None:
        raise ValueError(f"k={k} is not a Paley order (k-1 prime ≡ 3 mod 4, or k/2-1 prime ≡ 1 mod 4)")
    which, q = kind
    Q = _jacobsthal(q)
    ones = torch.ones(q, dtype=torch.int64)
    if which == "I":  # H = I + S, S = [[0, 1ᵀ], [-1, Q]] skew-symmetric
        S = torch.zeros(q + 1, q + 1, dtype=torch.int64)
        S[0, 1:], S[1:, 0], S[1:, 1:] = ones, -ones, Q
        return torch.eye(q + 1, dtype=torch.int64) + S
    # Paley II: C = [[0, 1ᵀ], [1, Q]] symmetric conference matrix; H = C ⊗ [[1,1],[1,-1]] + I ⊗ [[1,-1],[-1,-1]]
    C = torch.zeros(q + 1, q + 1, dtype=torch.int64)
    C[0, 1:], C[1:, 0], C[1:, 1:] = ones, ones, Q
    A = torch.tensor([[1, 1], [1, -1]])
    B = torch.tensor([[1, -1], [-1, -1]])
    return torch.kron(C, A) + torch.kron(torch.eye(q + 1, dtype=torch.int64), B)


def sylvester_hadamard(n: int, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    """±1 Sylvester-Hadamard matrix of order n = 2^m: H_{2n} = [[H, H], [H, -H]]."""
    if n < 1 or n & (n - 1):
        raise ValueError(f"n={n} must be a power of two")
    H = torch.ones(1, 1, dtype=dtype)
    while H.shape[0] < n:
        H = torch.cat([torch.cat([H, H], 1), torch.cat([H, -H], 1)], 0)
    return H


def _factor(n: int) -> Optional[tuple[int, int]]:
    p = n & -n  # largest power of two dividing n
    while p >= 1:
        K = n // p
        if K == 1 or _paley_prime(K) is not None:
            return K, p
        p //= 2
    return None


def hadamard_factor(n: int) -> tuple[int, int]:
    """(K, p) with n = K·p, p a power of two and K = 1 or a Paley order; the smallest K wins (cheapest).

    Raises UnsupportedHadamardSize when no factorisation exists."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r} must be a positive int")
    found = _factor(n)
    if found is None:
        raise UnsupportedHadamardSize(
            f"no Hadamard matrix of order n={n} is constructible here (n = K·2^m needs K = 1 or a Paley "
            f"order). Choose an explicit alternative: hadamard_fallback='block' (block-diagonal Hadamard of "
            f"size {largest_hadamard_divisor(n)}) or hadamard_fallback='orthogonal' (random orthogonal, "
            "dense online).")
    return found


def is_supported(n: int) -> bool:
    """True when an exact Hadamard matrix of order n is constructible here."""
    return _factor(n) is not None


def largest_hadamard_divisor(n: int) -> int:
    """Largest supported Hadamard order b dividing n (b = 1 when n is odd)."""
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    divisors = sorted(set(small + [n // d for d in small]), reverse=True)
    return next(d for d in divisors if is_supported(d))


def hadamard_matrix(n: int, normalized: bool = True, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Dense Hadamard matrix H_K ⊗ H_{2^m} of order n (scaled by 1/√n when normalized, so it is orthogonal)."""
    K, p = hadamard_factor(n)
    H = sylvester_hadamard(p, dtype)
    if K > 1:
        H = torch.kron(paley_hadamard(K).to(dtype), H)
    return H / math.sqrt(n) if normalized else H


def random_orthogonal_matrix(n: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Seeded Haar-random orthogonal matrix (QR of a Gaussian, signs fixed by diag(R))."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, n, generator=g, dtype=torch.float64)
    Q, R = torch.linalg.qr(A)
    Q = (Q * torch.sign(torch.diagonal(R))[None, :]).contiguous()
    return Q.to(dtype)


def random_signs(n: int, seed: int = 0) -> torch.Tensor:
    """Seeded ±1 vector (float64), the D in QuaRot's randomised Hadamard D·H."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (n,), generator=g).to(torch.float64) * 2 - 1


# ----------------------------------------------------------------------------- fast transforms


def fwht(x: torch.Tensor) -> torch.Tensor:
    """Unnormalised Walsh-Hadamard transform over the last dim (size 2^m): returns x @ H_{2^m} (Sylvester)."""
    n = x.shape[-1]
    if n & (n - 1):
        raise ValueError(f"fwht needs a power-of-two last dim, got {n}")
    lead = x.shape[:-1]
    h = 1
    y = x.reshape(-1, n)
    while h < n:
        y = y.view(-1, n // (2 * h), 2, h)  # (rows, pairs, 2, h): butterflies between halves of each 2h chunk
        a, b = y[:, :, 0, :], y[:, :, 1, :]
        y = torch.stack((a + b, a - b), dim=2)
        h *= 2
    return y.reshape(*lead, n)


RADIX = 64  # largest dense Sylvester factor in the Kronecker-factored transform


def _factors(n: int) -> list:
    """n = K · 2^m as [K?, r_1, r_2, ...] with every power-of-two factor r_i <= RADIX, balanced."""
    K, p = hadamard_factor(n)
    m = p.bit_length() - 1
    parts = -(-m // (RADIX.bit_length() - 1)) if m else 0  # number of power-of-two factors
    exps = [m // parts + (1 if i < m % parts else 0) for i in range(parts)] if parts else []
    return ([K] if K > 1 else []) + [2 ** e for e in exps]


@lru_cache(maxsize=64)
def _factor_matrix(k: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    H = paley_hadamard(k) if k & (k - 1) else sylvester_hadamard(k)
    return H.to(device=device, dtype=dtype)


def hadamard_transform(x: torch.Tensor, n: Optional[int] = None, transpose: bool = False) -> torch.Tensor:
    """x @ H_n (normalised) over the last dim, fast: H_n = H_K ⊗ H_r1 ⊗ H_r2 ⊗ ... (r_i <= 64).

    Each Kronecker factor is one GEMM on the last axis, after which that axis is moved to the front; after
    all factors the axes are back in order. O(n (K + Σ r_i)) work instead of O(n²): the Walsh-Hadamard
    butterfly (`fwht`) done radix-64, which suits BLAS far better than log2(n) passes of radix 2.
    With transpose=True returns x @ H_nᵀ (Paley I matrices are not symmetric)."""
    n = n or x.shape[-1]
    if x.shape[-1] != n:
        raise ValueError(f"last dim {x.shape[-1]} != n={n}")
    lead = x.shape[:-1]
    y = x.reshape(-1, n)
    rows = y.shape[0]
    for f in reversed(_factors(n)):
        H = _factor_matrix(f, str(x.device), x.dtype)
        H = H.T if transpose else H
        y = (y.reshape(rows, n // f, f) @ H).transpose(1, 2).reshape(rows, n)  # (rows, f, n/f): axis to front
    return y.reshape(*lead, n) / math.sqrt(n)


# ----------------------------------------------------------------------------- one rotation, dense or online


def check_fallback(fallback: Optional[str]) -> None:
    if fallback not in FALLBACKS:
        raise ValueError(f"hadamard_fallback={fallback!r} is unknown; allowed: {list(FALLBACKS)}")


@register_module
class HadamardRotation(nn.Module):
    """Orthogonal x ↦ x @ (R ⊗ I_inner) over the last dim, R an n×n Hadamard (or the explicit fallback).

    `inner` > 1 rotates across groups (QuaRot's cross-head transform: n heads of `inner` dims each).
    `kind` is "hadamard" (fast FWHT path), "block" (I ⊗ H_b, fast) or "orthogonal" (dense random R).
    `.matrix()` returns the dense (n·inner)² equivalent, used to check and fold it."""

    def __init__(self, n: int, inner: int = 1, fallback: Optional[str] = None, seed: int = 0):
        super().__init__()
        check_fallback(fallback)
        self.n, self.inner = int(n), int(inner)
        self.fallback, self.seed = fallback, int(seed)
        if is_supported(self.n):
            self.kind, self.block = "hadamard", self.n
        elif fallback is None:
            hadamard_factor(self.n)  # raises the explicit error
        elif fallback == "block":
            self.kind, self.block = "block", largest_hadamard_divisor(self.n)
            if self.block == 1:
                raise UnsupportedHadamardSize(
                    f"n={self.n}: the block fallback would be the identity (no Hadamard order > 1 divides it); "
                    "use hadamard_fallback='orthogonal'")
        else:
            self.kind, self.block = "orthogonal", self.n
            self.register_buffer("R", random_orthogonal_matrix(self.n, seed, torch.float32), persistent=True)

    def extra_repr(self) -> str:
        return f"n={self.n}, inner={self.inner}, kind={self.kind}, block={self.block}"

    def get_config(self) -> dict:
        return dict(n=self.n, inner=self.inner, fallback=self.fallback, seed=self.seed)

    def _rotate_last(self, y: torch.Tensor) -> torch.Tensor:
        """y (..., n) @ R."""
        if self.kind == "orthogonal":
            return y @ self.R.to(y.dtype)
        if self.kind == "block":
            yb = y.reshape(*y.shape[:-1], self.n // self.block, self.block)  # (..., n/b, b)
            return hadamard_transform(yb).reshape(y.shape)
        return hadamard_transform(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x @ M in float32 (float64 inputs stay float64: used to fold M into weights exactly)."""
        dtype = x.dtype
        y = x if dtype == torch.float64 else x.float()
        if self.inner == 1:
            return self._rotate_last(y).to(dtype)
        y = y.reshape(*y.shape[:-1], self.n, self.inner).transpose(-1, -2)  # (..., inner, n)
        y = self._rotate_last(y).transpose(-1, -2)  # (..., n, inner)
        return y.reshape(x.shape).to(dtype)

    def matrix(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Dense M with forward(x) = x @ M."""
        if self.kind == "orthogonal":
            R = self.R.to(torch.float64).contiguous()
        elif self.kind == "block":
            R = torch.block_diag(*[hadamard_matrix(self.block)] * (self.n // self.block))
        else:
            R = hadamard_matrix(self.n)
        return torch.kron(R, torch.eye(self.inner, dtype=torch.float64)).to(dtype)
