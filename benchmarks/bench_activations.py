"""Benchmark: cost of streaming activation statistics.

1. Overhead: `collect_activations` (all roles, all layers) vs a plain forward pass over the same batches
   (same head-skipping kwargs), best of `repeats`, on a mid-size random LLaDA (CPU) or on SmolLM2.
   Goal: ratio <= 1.3.
2. Memory: the statistics' tensor footprint, the peak RSS growth of the process and the Python-heap peak
   (tracemalloc) while the number of calibration tokens doubles; all should stay flat.

    .venv/bin/python benchmarks/bench_activations.py [--smollm2] [--threads N]
"""
from __future__ import annotations

import argparse
import time
import tracemalloc
from pathlib import Path

import torch

from dllmq.activations import collect_activations
from dllmq.activations.collect import forward_kwargs, iter_batches


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (Linux /proc/self/clear_refs, value 5)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@torch.no_grad()
def plain_forward(model, data, batch_size: int) -> None:
    extra = forward_kwargs(model)
    device = next(model.parameters()).device
    for ids, mask in iter_batches(data, batch_size=batch_size):
        model(ids.to(device), attention_mask=mask, **extra)


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times)


def overhead(model, data, batch_size: int, repeats: int) -> dict:
    plain_forward(model, data[:batch_size], batch_size)  # warm up
    t_plain = best_time(lambda: plain_forward(model, data, batch_size), repeats)
    t_stats = best_time(lambda: collect_activations(model, data, batch_size=batch_size, progress=False), repeats)
    return {"plain_s": t_plain, "collect_s": t_stats, "ratio": t_stats / t_plain}


def memory(model, make_data, batch_size: int, sizes) -> list:
    rows = []
    for n in sizes:
        data = make_data(n)
        reset = _reset_peak_rss()
        before = _rss_kib("VmRSS")
        tracemalloc.start()
        stats = collect_activations(model, data, batch_size=batch_size, progress=False)
        _, py_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rows.append({"tokens": stats.n_tokens, "stats_bytes": stats.nbytes(),
                     "peak_rss_growth_MiB": (_rss_kib("VmHWM") - before) / 1024 if reset else float("nan"),
                     "python_heap_peak_MiB": py_peak / 2 ** 20})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smollm2", action="store_true", help="use SmolLM2-135M (offline GGUF) instead")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=16, help="sequences of 128 tokens in the overhead run")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.smollm2:
        from dllmq.models import load_model
        model, _ = load_model("smollm2-135m", device=args.device)
        name, vocab, T, batch = "smollm2-135m", 49152, 128, 8
    else:
        from dllmq.models import build_random_model
        model, _ = build_random_model("llada", d_model=512, n_heads=8, n_kv_heads=8, n_layers=4,
                                      mlp_hidden_size=1536)
        model = model.to(args.device)
        name, vocab, T, batch = "random LLaDA d512 x4 blocks", 101, 128, 8

    def make_data(n):
        return torch.randint(4, vocab, (n, T), generator=torch.Generator().manual_seed(n))

    res = overhead(model, make_data(args.samples), batch, args.repeats)
    print(f"model: {name}, device: {args.device}, threads: {torch.get_num_threads()}, batch {batch} x {T} tokens")
    print("\n| measurement | plain forward (s) | collect_activations (s) | ratio (goal <= 1.3) |")
    print("|---|---|---|---|")
    print(f"| {args.samples} x {T} tokens, all roles | {res['plain_s']:.3f} | {res['collect_s']:.3f} | {res['ratio']:.2f} |")
    rows = memory(model, make_data, batch, (8, 16, 32))
    print("\n| tokens | stats tensors (bytes) | peak RSS growth (MiB) | Python heap peak (MiB) |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['tokens']} | {r['stats_bytes']} | {r['peak_rss_growth_MiB']:.1f} | {r['python_heap_peak_MiB']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
