"""Cost of QuaRot's online Hadamard: fast Walsh-Hadamard transform vs a dense Hadamard matmul, both as
ratios of a plain n×n linear layer (x @ Wᵀ) timed in the same process.

    .venv/bin/python benchmarks/bench_hadamard.py [--tokens 64] [--sizes 128,1024,4096,12288] [--device cpu]
        [--threads 1] [--repeats 5]

For n = K·2^m the fast path is an FWHT on the 2^m axis plus a K×K product (12288 = 12·1024: K = 12).
"""
from __future__ import annotations

import argparse
import time

import torch

from dllmq.quant.hadamard import fwht, hadamard_factor, hadamard_matrix, hadamard_transform


def _time(fn, device: str, repeats: int) -> float:
    fn()  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def bench(n: int, tokens: int, device: str, repeats: int) -> dict:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(tokens, n, generator=g).to(device)
    W = torch.randn(n, n, generator=g).to(device) / n ** 0.5
    H = hadamard_matrix(n, dtype=torch.float32).to(device)
    assert torch.allclose(hadamard_transform(x), x @ H, atol=1e-3), "fast transform != dense product"
    t_lin = _time(lambda: torch.nn.functional.linear(x, W), device, repeats)
    t_dense = _time(lambda: x @ H, device, repeats)
    t_fast = _time(lambda: hadamard_transform(x), device, repeats)
    K, p = hadamard_factor(n)
    xk = x.reshape(tokens, K, p)
    t_radix2 = _time(lambda: fwht(xk), device, repeats)  # the 2^m part only (the K×K product comes on top)
    return dict(n=n, factor=f"{K}x{p}", linear_ms=1e3 * t_lin, dense_vs_linear=t_dense / t_lin,
                radix2_vs_linear=t_radix2 / t_lin, fwht_vs_linear=t_fast / t_lin, fwht_vs_dense=t_fast / t_dense)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--sizes", default="128,1024,4096,12288")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (1: stable numbers on a shared machine)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [bench(int(n), args.tokens, args.device, args.repeats) for n in args.sizes.split(",")]
    print(f"online Hadamard on {args.tokens} tokens, device={args.device} (ratios: time / time of x @ Wᵀ, W n×n)")
    print("dense H: x @ H (n×n); radix-2: butterfly `fwht`; FWHT: `hadamard_transform` (radix-64 Kronecker)")
    print(f"{'n':>6} {'H_K x 2^m':>10} {'linear ms':>10} {'dense H':>9} {'radix-2':>9} {'FWHT':>8} {'FWHT/dense':>11}")
    for r in rows:
        print(f"{r['n']:>6} {r['factor']:>10} {r['linear_ms']:>10.3f} {r['dense_vs_linear']:>9.2f} "
              f"{r['radix2_vs_linear']:>9.3f} {r['fwht_vs_linear']:>8.3f} {r['fwht_vs_dense']:>11.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
