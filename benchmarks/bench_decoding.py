"""Batched generation of 16 prompts vs the same prompts one at a time (same settings, same process).

    python benchmarks/bench_decoding.py [--model tiny] [--device cpu] [--gen-length 64] [--repeats 3]

Reports tokens/s of both and their ratio (goal: batched >= 5x)."""
from __future__ import annotations

import argparse
import time

import torch

import dllmq
from dllmq.decoding import generate

PROMPTS = [f"Q: What is {a} plus {b}?\nA:" for a, b in zip(range(3, 19), range(11, 27))]


def _time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def _random_llada_8b():
    """LLaDA-8B's config with random weights, built directly in bf16 on the GPU, plus the char tokenizer
    (its ids are a subset of the 126464-token vocabulary)."""
    from dllmq.models import LLaDAConfig, LLaDAModelLM
    from dllmq.models.tokenizers import build_char_tokenizer
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = LLaDAModelLM(LLaDAConfig()).eval()
    torch.set_default_dtype(torch.float32)
    return model, build_char_tokenizer()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--device", default=None)
    ap.add_argument("--gen-length", type=int, default=64)
    ap.add_argument("--block-length", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--random-8b", action="store_true",
                    help="an LLaDA-8B-shaped model with random bf16 weights on the GPU (timing only)")
    args = ap.parse_args(argv)
    if args.random_8b:
        model, tok = _random_llada_8b()
        args.model = "LLaDA-8B-shaped (random)"
    else:
        try:
            model, tok = dllmq.load_model(args.model, device=args.device)
        except FileNotFoundError:
            model, tok = dllmq.load_model("tiny-random", device=args.device)
    kw = dict(steps=args.gen_length, gen_length=args.gen_length, block_length=args.block_length)
    generate(model, tok, PROMPTS[:2], **kw)  # warm-up
    t_batched = _time(lambda: generate(model, tok, PROMPTS, **kw), args.repeats)
    t_single = _time(lambda: [generate(model, tok, [p], **kw) for p in PROMPTS], args.repeats)
    n_tokens = len(PROMPTS) * args.gen_length
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    result = {"model": args.model, "device": str(next(model.parameters()).device), "prompts": len(PROMPTS),
              "gen_length": args.gen_length, "one_at_a_time_tok_s": n_tokens / t_single,
              "batched_tok_s": n_tokens / t_batched, "ratio": t_single / t_batched, "peak_gpu_gib": peak}
    print(f"{'setting':<16}{'tokens/s':>12}")
    print(f"{'one at a time':<16}{result['one_at_a_time_tok_s']:>12.1f}")
    print(f"{'batched (16)':<16}{result['batched_tok_s']:>12.1f}")
    print(f"batched / one-at-a-time throughput ratio: {result['ratio']:.1f}x  "
          f"({result['model']}, {result['device']}, gen_length {args.gen_length}, peak GPU {peak:.1f} GiB)")
    return result


if __name__ == "__main__":
    main()
