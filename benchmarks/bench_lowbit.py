"""Real low-bit inference against fake quantization: weight memory, peak RSS and forward latency per backend.

    .venv/bin/python -m benchmarks.bench_lowbit [--block] [--threads 2] [--repeats 3] [--out PATH]

Backends: fp32, bf16, fake W4A16 / W8A8 (quantize-dequantize in float), packed int4 (dequantized each forward),
kernel int8 (W8A8: per-token int8 activations x int8 weights, int32 accumulation; oneDNN on CPU,
torch._int_mm on CUDA), kernel int4 (W4A16 g128: PyTorch's int4 weight-pack matmul, bf16 activations),
bitsandbytes NF4 / LLM.int8.

* weight bytes: `backends.weight_memory` (block linears, from the tensors each layout holds);
* peak RSS: each backend in a fresh subprocess: build, convert, malloc_trim, reset the kernel's high-water mark
  (/proc/self/clear_refs), run forwards, read VmHWM; so it is the inference-time peak of that format alone;
* latency: every backend in one process, timed round robin, best of `repeats` forwards, as ratios to fp32 and
  bf16 timed there.

Scales: the shipped tiny model (8 x 128 tokens; default) and, with --block, one LLaDA-8B-shaped block with
random weights (hidden 4096, FFN 12288, 32 heads, 2048 tokens). Results go to benchmarks/results/lowbit_<device>.json
(the notebook 11 plot reads it); the default run keeps the block numbers already in the file.
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

BACKENDS = ("fp32", "bf16", "fake-w4a16", "packed-int4", "kernel-int4", "fake-w8a8", "kernel-int8", "bnb-nf4",
            "bnb-int8")
W4 = "rtn:w4a16g128"
W8 = "rtn:w8a8:sym,a_sym"  # per-channel weights, per-token activations, symmetric (SmoothQuant/QuaRot grids)
RESULTS = Path(__file__).parent / "results"
BLOCK = dict(d_model=4096, n_heads=32, n_kv_heads=32, n_layers=1, mlp_hidden_size=12288, max_sequence_length=4096)


def build(scale: str):
    """(fp32 model, input ids) of a scale: the trained tiny model or one 8B-shaped random LLaDA block."""
    from dllmq.models import build_random_model, load_model

    g = torch.Generator().manual_seed(0)
    if scale == "tiny":
        model, _ = load_model("tiny", device="cpu")
        return model, torch.randint(4, 1000, (8, 128), generator=g)
    model, _ = build_random_model("llada", seed=0, **BLOCK)
    return model, torch.randint(4, 100, (1, 2048), generator=g)


def convert(model, backend: str):
    """`model` (fp32, modified in place) in `backend`'s format."""
    from dllmq.quant import quantize
    from dllmq.quant.backends import _cast, bnb_quantize, pack_model

    if backend == "bf16":
        return _cast(model, torch.bfloat16)
    if backend.startswith("bnb-"):
        return bnb_quantize(model, backend[4:])
    if backend == "fp32":
        return model
    recipe = W4 if backend in ("fake-w4a16", "packed-int4", "kernel-int4") else W8
    model, _ = quantize(model, recipe, inplace=True, backend="kernel" if backend.startswith("kernel") else "fake")
    if backend == "packed-int4":
        pack_model(model)
    return model


def _forward(model, ids, device: str) -> float:
    t0 = time.perf_counter()
    with torch.no_grad():
        model(input_ids=ids)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def _vm(key: str) -> int:
    return int(re.search(rf"{key}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024


def worker(scale: str, backend: str, device: str) -> dict:
    """One backend alone in this process: weight bytes, RSS after conversion, peak RSS while running."""
    from dllmq.quant.backends import weight_memory

    model, ids = build(scale)
    model = convert(model, backend).to(device)
    gc.collect()
    try:  # hand freed heap pages (the fp32 weights a conversion replaced) back to the OS before measuring
        __import__("ctypes").CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    rss_loaded = _vm("VmRSS")
    _forward(model, ids.to(device), device)
    return dict(weight_bytes=weight_memory(model), rss_loaded=rss_loaded, peak_rss=_vm("VmHWM"))


def measure(scale: str, device: str, repeats: int, threads: int) -> dict:
    """Latency of every backend in this process, then memory of each in its own subprocess."""
    base, ids = build(scale)
    ids = ids.to(device)
    models, rows = {}, {}
    for backend in BACKENDS:
        try:
            models[backend] = convert(copy.deepcopy(base), backend).to(device)
            _forward(models[backend], ids, device)  # warm-up (kernel layouts, oneDNN primitives)
            rows[backend] = {"latency_s": float("inf")}
        except Exception as err:  # e.g. bitsandbytes missing here: reported in the table, not fatal
            models.pop(backend, None)
            rows[backend] = {"latency_s": None, "note": f"{type(err).__name__}: {err}"[:160]}
    for _ in range(repeats):  # round robin: a load change on the shared machine hits every backend alike
        for backend, model in models.items():
            rows[backend]["latency_s"] = min(rows[backend]["latency_s"], _forward(model, ids, device))
    print(f"  {scale}: " + ", ".join(f"{b} {r['latency_s']:.3g}s" for b, r in rows.items() if r["latency_s"]), flush=True)
    del models
    del base
    gc.collect()
    for backend in BACKENDS:
        cmd = [sys.executable, "-m", "benchmarks.bench_lowbit", "--worker", scale, backend, "--device", device,
               "--threads", str(threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parents[1])
        if out.returncode == 0:
            rows[backend].update(json.loads(out.stdout.strip().splitlines()[-1]))
        else:
            rows[backend]["note"] = out.stderr.strip().splitlines()[-1][:160] if out.stderr.strip() else "failed"
    for r in rows.values():
        for ref in ("fp32", "bf16"):
            t = rows[ref]["latency_s"]
            r[f"time_vs_{ref}"] = None if r["latency_s"] is None else round(r["latency_s"] / t, 3)
            b = rows[ref].get("weight_bytes")
            r[f"bytes_vs_{ref}"] = None if r.get("weight_bytes") is None else round(r["weight_bytes"] / b, 4)
    return {"tokens": int(ids.numel()), "rows": rows}


def print_table(scale: str, result: dict) -> None:
    print(f"\n{scale}: {result['tokens']} tokens")
    print(f"{'backend':12s} {'weight MiB':>10s} {'vs bf16':>8s} {'peak RSS MiB':>12s} {'ms':>9s} {'vs fp32':>8s} "
          f"{'vs bf16':>8s}")
    for name, r in result["rows"].items():
        mib = lambda b: "-" if b is None else f"{b / 2**20:.1f}"  # noqa: E731
        ms = "-" if r["latency_s"] is None else f"{1e3 * r['latency_s']:.1f}"
        print(f"{name:12s} {mib(r.get('weight_bytes')):>10s} {str(r['bytes_vs_bf16']):>8s} "
              f"{mib(r.get('peak_rss')):>12s} {ms:>9s} {str(r['time_vs_fp32']):>8s} {str(r['time_vs_bf16']):>8s}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--block", action="store_true", help="also the LLaDA-8B-shaped block (minutes on 2 cores)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5, help="timed forwards per backend (the tiny model: 4x)")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/lowbit_<device>.json)")
    ap.add_argument("--worker", nargs=2, metavar=("SCALE", "BACKEND"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(worker(*args.worker, args.device)))
        return 0
    out = Path(args.out) if args.out else RESULTS / f"lowbit_{args.device}.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    scales = ["tiny", "block8b"] if args.block else ["tiny"]
    for scale in scales:
        repeats = args.repeats * (4 if scale == "tiny" else 1)
        results[scale] = measure(scale, args.device, repeats, args.threads)
        results[scale].update(device=args.device, threads=args.threads, torch=torch.__version__,
                              load_avg=os.getloadavg()[0], recipes={"w4": W4, "w8": W8})
        print_table(scale, results[scale])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
