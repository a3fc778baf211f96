"""GPTQ cost, as ratios against RTN measured in the same process.

    .venv/bin/python benchmarks/bench_gptq.py                      # CPU: 4096x4096 and 4096x12288 layers + tiny model
    .venv/bin/python benchmarks/bench_gptq.py --sizes 1024x1024    # quicker
    .venv/bin/python benchmarks/bench_gptq.py --llada-block --device cuda   # one LLaDA-8B-shaped block, GPTQ and AWQ
    .venv/bin/python benchmarks/bench_gptq.py --llada-block --device cuda --stream   # model on CPU, block streamed

Layer rows: W [out, in] random, H from `--tokens` random correlated inputs; GPTQ (g128, lazy blocks of 128)
vs RTN g128 on the same weight; H accumulation timed separately. Model rows: whole-model `dllmq.quantize`.
The LLaDA block row builds a 1-block LLaDA with the 8B shapes (d 4096, 32 heads, MLP 12288; random
weights, small vocabulary) and calibrates on `--calib-samples` x `--calib-len` random tokens (paper: 128 x 2048).
"""
from __future__ import annotations

import argparse
import copy
import time

import torch

from dllmq.quant.gptq import gptq_quantize
from dllmq.quant.quantizer import QuantSpec, fake_quantize
from dllmq.quant.sequential import HessianAccumulator


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device="cpu"):
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - t0


def bench_layer(out_f: int, in_f: int, tokens: int, device: str) -> dict:
    """One linear: RTN vs GPTQ times (and H accumulation) at W4 g128."""
    g = torch.Generator(device="cpu").manual_seed(0)
    w = (torch.randn(out_f, in_f, generator=g) * 0.02).to(device)
    x = torch.randn(tokens, in_f, generator=g).to(device)
    x = x + 0.5 * x.roll(1, dims=1)  # correlated channels
    spec = QuantSpec(bits=4, granularity="group", group_size=128, include_zero=True)
    acc = HessianAccumulator(in_f, device)
    _, t_h = timed(lambda: acc.add(x.view(tokens // 512, 512, in_f) if tokens % 512 == 0 else x), device)
    _, t_rtn = timed(lambda: fake_quantize(w, spec), device)
    res, t_gptq = timed(lambda: gptq_quantize(w, acc.H, spec), device)
    return {"case": f"layer {out_f}x{in_f}", "rtn_s": t_rtn, "gptq_s": t_gptq, "hessian_s": t_h,
            "gptq/rtn": t_gptq / t_rtn}


def bench_model(name: str, device: str, n: int, seq_len: int) -> list:
    from dllmq import load_model
    from dllmq.calibration import get_calibration
    from dllmq.quant import quantize

    try:
        model, tok = load_model(name, device="cpu")
    except FileNotFoundError:
        name = "tiny-random"
        model, tok = load_model(name, device="cpu")
    calib = get_calibration("text", tok, n_samples=n, seq_len=seq_len)
    g = 128 if model.config.hidden_size % 128 == 0 else 32
    rows, base = [], None
    for method in ("rtn", "gptq", "awq"):
        m = copy.deepcopy(model)
        _, t = timed(lambda: quantize(m, f"{method}:w4a16g{g}", calib, device=device, inplace=True), device)
        base = base or t
        rows.append({"case": f"{name} {method} w4g{g} ({n}x{seq_len} tokens)", "seconds": t, "vs_rtn": t / base})
    return rows


def bench_llada_block(device: str, n: int, seq_len: int, awq_len: int = 512, shape: str = "4096,32,12288",
                      stream: bool = False) -> list:
    """stream=True keeps the model on the CPU and streams the block to `device` (the big-model path)."""
    from dllmq.models import build_random_model
    from dllmq.quant import quantize

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    d, heads, mlp = map(int, shape.split(","))
    model, _ = build_random_model("llada", seed=0, d_model=d, n_heads=heads, n_kv_heads=heads, n_layers=1,
                                  mlp_hidden_size=mlp, max_sequence_length=4096)
    model = model.to(device="cpu" if stream else device, dtype=dtype)
    rows, base = [], None
    for method in ("rtn", "gptq", "awq"):
        length = awq_len if method == "awq" else seq_len  # AWQ calibrates on 128 x 512 (pile-val) in the paper
        calib = torch.randint(4, 100, (n, length))
        m = copy.deepcopy(model)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        _, t = timed(lambda: quantize(m, f"{method}:w4a16g128", calib, device=device, batch_size=8, inplace=True), device)
        base = base or t
        peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")
        rows.append({"case": f"LLaDA block {shape} {method} w4g128 ({n}x{length}){' stream' if stream else ''}", "seconds": t, "vs_rtn": t / base,
                     "peak_GiB": peak})
        del m
    return rows


def print_table(rows: list) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    print(" | ".join(f"{k:>12}" if k != "case" else f"{k:<46}" for k in keys))
    for r in rows:
        cells = []
        for k in keys:
            v = r.get(k, "")
            cells.append(f"{v:<46}" if k == "case" else (f"{v:>12.3f}" if isinstance(v, float) else f"{v!s:>12}"))
        print(" | ".join(cells))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="4096x4096,4096x12288", help="comma-separated OUTxIN layer shapes")
    p.add_argument("--tokens", type=int, default=2048, help="calibration tokens for the layer Hessians")
    p.add_argument("--device", default="cpu")
    p.add_argument("--model", default="tiny", help="whole-model row ('' to skip)")
    p.add_argument("--llada-block", action="store_true", help="run the LLaDA-8B-shaped block (GPU recommended)")
    p.add_argument("--calib-samples", type=int, default=128)
    p.add_argument("--calib-len", type=int, default=2048)
    p.add_argument("--awq-len", type=int, default=512)
    p.add_argument("--shape", default="4096,32,12288", help="LLaDA block d_model,heads,mlp (default: LLaDA-8B)")
    p.add_argument("--stream", action="store_true", help="keep the model on CPU, stream blocks to --device")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    if args.llada_block:
        print_table(bench_llada_block(args.device, args.calib_samples, args.calib_len, args.awq_len, args.shape,
                                      args.stream))
        return 0
    rows = [bench_layer(*map(int, s.split("x")), args.tokens, args.device) for s in args.sizes.split(",") if s]
    print_table(rows)
    if args.model:
        print_table(bench_model(args.model, args.device, 16, 256))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
