"""Bad inputs at every public boundary, table-driven: each must raise a clear error naming the parameter
(or the file, line and field) and what is allowed, before any work is done.

One table per class of input (recipe, quantize, generate, likelihood, load_model, load_quantized /
save_quantized, calibration, store, sweep grid, task files). A case is (id, call, exception, pattern):
`call(tmp)` must raise `exception` with a message matching `pattern`. Refused quantizations with
inplace=True must also leave the model exactly as it was (state dict and module types compared).
"""
from __future__ import annotations

import functools
import re
import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn as nn

E = (ValueError, TypeError, FileNotFoundError)  # what a clear error may be


# ----------------------------------------------------------------------------------------------- models


@functools.lru_cache(maxsize=None)
def _model(family: str = "llada", **overrides):
    """A shared tiny random model (read-only cases only)."""
    from dllmq.models import build_random_model
    return build_random_model(family, seed=0, **overrides)


def _fresh(family: str = "llada", **overrides):
    from dllmq.models import build_random_model
    return build_random_model(family, seed=0, **overrides)


def _ids(n: int = 2, T: int = 16, hi: int = 100, dtype=torch.long):
    return torch.randint(4, hi, (n, T), generator=torch.Generator().manual_seed(0)).to(dtype)


def _snapshot(model: nn.Module) -> tuple:
    return ({k: v.detach().clone() for k, v in model.state_dict().items()},
            [(n, type(m).__name__) for n, m in model.named_modules()])


def _same(a: tuple, b: tuple) -> bool:
    (sa, ma), (sb, mb) = a, b
    return ma == mb and sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def refused_unchanged(build, recipe, calib=None, **kw):
    """quantize(..., inplace=True) must refuse AND leave the caller's model untouched."""
    def call(tmp):
        from dllmq import quantize
        model, tok = build()
        before = _snapshot(model)
        try:
            quantize(model, recipe, calib() if callable(calib) else calib, inplace=True, **kw)
        finally:
            assert _same(before, _snapshot(model)), "the refused recipe modified the model"
    return call


# ----------------------------------------------------------------------------------------------- artefacts


ART: dict = {}


@pytest.fixture(scope="module", autouse=True)
def _artefacts(tmp_path_factory):
    """A saved tiny LLaDA and Dream (save_pretrained + tokenizer) and a saved quantized tiny LLaDA."""
    from dllmq import quantize
    from dllmq.quant import save_quantized

    root = tmp_path_factory.mktemp("bad_inputs")
    for family in ("llada", "dream"):
        model, tok = _fresh(family)
        model.save_pretrained(root / family)
        tok.save_pretrained(root / family)
        ART[family] = root / family
    model, tok = _fresh("llada")
    qmodel, report = quantize(model, "rtn:w4a8g32:kv=8", _ids())
    save_quantized(qmodel, root / "quant", tok=tok, report=report)
    ART["quant"] = root / "quant"
    store = root / "store.jsonl"
    from dllmq.sweeps.store import ResultStore
    ResultStore(store).append_cell("c1", [{"task": "t", "metric": "acc", "value": 0.5, "stderr": 0.1, "n": 4},
                                          {"task": "u", "metric": "acc", "value": 0.25}], model="m", recipe="fp")
    ART["store"] = store
    yield
    ART.clear()


def _copy(tmp: Path, name: str) -> Path:
    dst = tmp / name
    if ART[name].is_dir():
        shutil.copytree(ART[name], dst)
    else:
        shutil.copy(ART[name], dst)
    return dst


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    out = edit(data)
    path.write_text(out if isinstance(out, str) else json.dumps(data if out is None else out))


def _edit_weights(path: Path, edit) -> None:
    from safetensors.torch import load_file, save_file
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path), metadata={"format": "pt"})


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _block_key(tensors: dict) -> str:
    return next(k for k in sorted(tensors) if ".blocks.1." in k or ".layers.1." in k)


# ----------------------------------------------------------------------------------------------- recipe


def _parse(text):
    return lambda tmp: __import__("dllmq").Recipe.parse(text)


RECIPE = [
    # no-op recipes
    ("rtn-w16a16-quantizes-nothing", _parse("rtn:w16a16"), ValueError, r"quantizes nothing.*w_bits"),
    ("quarot-w16a16-quantizes-nothing", _parse("quarot:w16a16"), ValueError, r"quantizes nothing"),
    # duplicates and conflicts
    ("dup-damp", _parse("gptq:w4a16g128:damp=0.01,damp=0.5"), ValueError, r"damp.*twice"),
    ("conflict-sym-asym", _parse("rtn:w4a16:sym,asym"), ValueError, r"'sym' and 'asym'"),
    ("dup-sym", _parse("rtn:w4a16:sym,sym"), ValueError, r"sym.*twice"),
    ("conflict-a_sym-a_asym", _parse("rtn:w4a8:a_sym,a_asym"), ValueError, r"'a_sym' and 'a_asym'"),
    ("dup-calib", _parse("gptq:w4a16g128:calib=tiny,calib=text"), ValueError, r"calib.*twice"),
    ("dup-n", _parse("gptq:w4a16g128:n=16,n=32"), ValueError, r"\bn\b.*twice"),
    ("dup-len", _parse("gptq:w4a16g128:len=16,len=32"), ValueError, r"len.*twice"),
    ("dup-seed", _parse("gptq:w4a16g128:seed=1,seed=2"), ValueError, r"seed.*twice"),
    ("dup-mask", _parse("gptq:w4a16g128:mask=0.5,mask=uniform"), ValueError, r"mask.*twice"),
    ("dup-q", _parse("rtn:w4a8:q=8,q=4"), ValueError, r"\bq\b.*twice"),
    ("conflict-setting-kv", _parse("rtn:w4a4kv4:kv=8"), ValueError, r"kv.*twice"),
    ("dup-setting-kv", _parse("rtn:w4a4kv4:kv=4"), ValueError, r"kv.*twice"),
    ("dup-wclip", _parse("rtn:w4a16:wclip=0.9,wclip=mse"), ValueError, r"wclip.*twice"),
    ("dup-aclip", _parse("rtn:w4a8:aclip=0.9,aclip=0.8"), ValueError, r"aclip.*twice"),
    ("dup-conv", _parse("rtn:w4a16:sym,conv=gptq,conv=signed"), ValueError, r"conv.*twice"),
    ("dup-flag-knob", _parse("gptq:w4a16g128:act_order,act_order=false"), ValueError, r"act_order.*twice"),
    ("dup-alpha", _parse("duquant:w4a4:alpha=0.5,alpha=0.6"), ValueError, r"alpha.*twice"),
    # attention-input bits on weight-only methods
    ("gptq-kv", _parse("gptq:w4a16g64:kv=4"), ValueError, r"kv_bits.*weight-only"),
    ("gptq-q", _parse("gptq:w4a16g64:q=8"), ValueError, r"q_bits.*weight-only"),
    ("awq-q", _parse("awq:w4a16g128:q=8"), ValueError, r"q_bits.*weight-only"),
    ("awq-kv", _parse("awq:w4a16g128:kv=8"), ValueError, r"kv_bits.*weight-only"),
    ("gptq-setting-kv", _parse("gptq:w4a16kv4"), ValueError, r"kv_bits.*weight-only"),
    ("gptq-a-bits", _parse("gptq:w4a8"), ValueError, r"a_bits"),
    ("awq-w16", _parse("awq:w16a16"), ValueError, r"w_bits"),
    ("smoothquant-a16", _parse("smoothquant:w8a16"), ValueError, r"a_bits"),
    # settings with no effect
    ("gptq-a_sym-unused", _parse("gptq:w4a16g128:a_sym"), ValueError, r"a_sym.*no effect"),
    ("gptq-aclip-unused", _parse("gptq:w4a16g128:aclip=0.9"), ValueError, r"aclip.*no effect"),
    ("awq-a_asym-unused", _parse("awq:w4a16g128:a_asym"), ValueError, r"a_asym.*no effect"),
    ("rtn-weight-only-aclip-unused", _parse("rtn:w4a16:aclip=0.9"), ValueError, r"aclip.*no effect"),
    ("rtn-weight-only-a_sym-unused", _parse("rtn:w4a16:a_sym"), ValueError, r"a_sym.*no effect"),
    ("rtn-w16-wclip-unused", _parse("rtn:w16a8:wclip=0.8"), ValueError, r"wclip.*no effect"),
    ("rtn-w16-sym-unused", _parse("rtn:w16a8:sym"), ValueError, r"sym.*no effect"),
    ("rtn-w16-group-unused", _parse("rtn:w16a8g128"), ValueError, r"group.*no effect"),
    ("conv-without-sym-unused", _parse("rtn:w4a16:conv=gptq"), ValueError, r"conv.*no effect"),
    ("gptq-static-groups-per-channel", _parse("gptq:w4a16:static_groups"), ValueError, r"static_groups.*no effect"),
    ("quarot-kv_sym-without-kv", _parse("quarot:w4a4:kv_sym=false"), ValueError, r"kv_sym.*no effect"),
    ("quarot-kv_clip-without-kv", _parse("quarot:w4a4:kv_clip=0.95"), ValueError, r"kv_clip.*no effect"),
    ("quarot-damp-with-rtn-weights", _parse("quarot:w4a4:kv=4,weights=rtn,damp=0.05"), ValueError,
     r"damp.*no effect"),
    ("awq-clip-grid-without-clip", _parse("awq:w4a16g128:clip=false,clip_grid=10"), ValueError,
     r"clip_grid.*no effect"),
    ("awq-n-grid-without-scale", _parse("awq:w4a16g128:scale=false,n_grid=10"), ValueError, r"n_grid.*no effect"),
    ("duquant-alpha-without-smoothing", _parse("duquant:w4a4:smoothing=none,alpha=0.6"), ValueError,
     r"alpha.*no effect"),
    # knob values
    ("smoothquant-alpha-high", _parse("smoothquant:w8a8:alpha=1.5"), ValueError, r"alpha=1.5.*\[0, 1\]"),
    ("smoothquant-alpha-negative", _parse("smoothquant:w8a8:alpha=-0.1"), ValueError, r"alpha"),
    ("smoothquant-smoothing", _parse("smoothquant:w8a8:smoothing=both"), ValueError, r"smoothing='both'.*allowed"),
    ("duquant-greedy-index", _parse("duquant:w4a4:greedy_index=col"), ValueError, r"greedy_index='col'.*allowed"),
    ("duquant-rotation-base", _parse("duquant:w4a4:rotation_base=haar"), ValueError, r"rotation_base.*allowed"),
    ("duquant-calib-input", _parse("duquant:w4a4:calib_input=median"), ValueError, r"calib_input.*allowed"),
    ("duquant-smoothing", _parse("duquant:w4a4:smoothing=magic"), ValueError, r"smoothing.*allowed"),
    ("duquant-permutation-times", _parse("duquant:w4a4:permutation_times=2"), ValueError,
     r"permutation_times.*allowed"),
    ("duquant-rotation-steps", _parse("duquant:w4a4:rotation_steps=-1"), ValueError, r"rotation_steps"),
    ("duquant-block-size-0", _parse("duquant:w4a4:block_size=0"), ValueError, r"block_size"),
    ("duquant-max-calib-tokens", _parse("duquant:w4a4:max_calib_tokens=-5"), ValueError, r"max_calib_tokens"),
    ("quarot-weights", _parse("quarot:w4a4:weights=awq"), ValueError, r"weights='awq'.*allowed"),
    ("quarot-rotation", _parse("quarot:w4a4:rotation=givens"), ValueError, r"rotation='givens'.*allowed"),
    ("quarot-fallback", _parse("quarot:w4a4:hadamard_fallback=nearest"), ValueError, r"hadamard_fallback.*allowed"),
    ("quarot-kv-clip-range", _parse("quarot:w4a4:kv=4,kv_clip=1.5"), ValueError, r"kv_clip"),
    ("quarot-rotation-seed", _parse("quarot:w4a4:rotation_seed=-1"), ValueError, r"rotation_seed"),
    ("awq-loss", _parse("awq:w4a16g128:loss=model"), ValueError, r"loss='model'.*allowed"),
    ("awq-n-grid-0", _parse("awq:w4a16g128:n_grid=0"), ValueError, r"n_grid"),
    ("awq-max-shrink", _parse("awq:w4a16g128:max_shrink=1.5"), ValueError, r"max_shrink"),
    ("awq-clip-tokens", _parse("awq:w4a16g128:clip_tokens=0"), ValueError, r"clip_tokens"),
    ("gptq-damp-0", _parse("gptq:w4a16g128:damp=0"), ValueError, r"damp"),
    ("gptq-damp-negative", _parse("gptq:w4a16g128:damp=-0.1"), ValueError, r"damp"),
    ("gptq-block-size-0", _parse("gptq:w4a16g128:block_size=0"), ValueError, r"block_size"),
    ("gptq-damp-step-0", _parse("gptq:w4a16g128:damp_step=0"), ValueError, r"damp_step"),
    ("knob-type", _parse("gptq:w4a16g128:damp=abc"), ValueError, r"damp"),
    ("knob-bool", _parse("gptq:w4a16g128:act_order=maybe"), ValueError, r"act_order"),
    ("knob-unknown", _parse("gptq:w4a16g128:bogus"), ValueError, r"'bogus'.*allowed"),
    # grammar
    ("no-setting", _parse("gptq"), ValueError, r"recipe='gptq'"),
    ("four-parts", _parse("gptq:w4a16g128:sym:extra"), ValueError, r"recipe="),
    ("unknown-method", _parse("bogus:w4a16"), ValueError, r"method='bogus'.*allowed"),
    ("bad-setting", _parse("gptq:w4x16"), ValueError, r"setting 'w4x16'"),
    ("bits-out-of-range", _parse("rtn:w1a16"), ValueError, r"w_bits=1"),
    ("a-bits-out-of-range", _parse("rtn:w4a17"), ValueError, r"a_bits=17"),
    ("group-0", _parse("rtn:w4a16g0"), ValueError, r"group_size=0"),
    ("not-a-string", lambda tmp: __import__("dllmq").Recipe.parse(42), TypeError, r"recipe=42"),
    ("trailing-colon", _parse("rtn:w4a16:"), ValueError, r"empty option"),
    ("empty-option", _parse("rtn:w4a16:,"), ValueError, r"empty option"),
    ("q-not-int", _parse("rtn:w4a8:q=abc"), ValueError, r"q='abc'"),
    ("kv-out-of-range", _parse("rtn:w4a16:kv=1"), ValueError, r"kv_bits=1"),
    ("wclip-range", _parse("rtn:w4a16:wclip=1.5"), ValueError, r"w_clip=1.5"),
    ("aclip-mse", _parse("rtn:w8a8:aclip=mse"), ValueError, r"a_?clip"),
    ("aclip-zero", _parse("rtn:w8a8:aclip=0"), ValueError, r"a_clip"),
    ("calib-source", _parse("rtn:w4a16:calib=books"), ValueError, r"source='books'.*allowed"),
    ("calib-n-0", _parse("rtn:w4a16:n=0"), ValueError, r"n_samples=0"),
    ("calib-mask-2", _parse("rtn:w4a16:mask=2"), ValueError, r"mask_ratio"),
    ("conv-unknown", _parse("rtn:w4a16:sym,conv=odd"), ValueError, r"sym_convention='odd'"),
    ("flag-with-value", _parse("rtn:w4a16:sym=true"), ValueError, r"option 'sym' takes no value"),
    ("valued-option-without-value", _parse("rtn:w4a8:kv"), ValueError, r"option 'kv' needs a value"),
    ("calib-without-value", _parse("rtn:w4a16:calib"), ValueError, r"option 'calib' needs a value"),
    # the dataclass, presets and dicts
    ("knob-value-type", lambda tmp: __import__("dllmq").Recipe("gptq", knobs={"damp": "x"}), ValueError, r"damp"),
    ("group-bool", lambda tmp: __import__("dllmq").Recipe("gptq", group_size=True), ValueError, r"group_size"),
    ("calib-not-spec", lambda tmp: __import__("dllmq").Recipe("gptq", calib="tiny"), TypeError, r"calib"),
    ("w-sym-not-bool", lambda tmp: __import__("dllmq").Recipe("gptq", w_sym="yes"), TypeError, r"w_sym"),
    ("dataclass-unused-a-clip", lambda tmp: __import__("dllmq").Recipe("gptq", a_clip=0.9), ValueError,
     r"a_clip.*no effect"),
    ("dataclass-gptq-kv", lambda tmp: __import__("dllmq").Recipe("gptq", kv_bits=4), ValueError,
     r"kv_bits.*weight-only"),
    ("paper-setting", lambda tmp: __import__("dllmq").Recipe.paper("gptq", "w8a8"), ValueError, r"setting='w8a8'"),
    ("paper-variant", lambda tmp: __import__("dllmq").Recipe.paper("gptq", "w4a16g128", variant="best"), ValueError,
     r"variant='best'"),
    ("paper-calib-key", lambda tmp: __import__("dllmq").Recipe.paper("gptq", "w4a16g128", calib={"sourc": "tiny"}),
     ValueError, r"'sourc'.*allowed"),
    ("paper-knob", lambda tmp: __import__("dllmq").Recipe.paper("gptq", "w4a16g128", bogus=1), ValueError, r"bogus"),
    ("from-dict-missing-method", lambda tmp: __import__("dllmq").Recipe.from_dict({"w_bits": 4}), ValueError,
     r"'method'"),
    ("from-dict-unknown-key", lambda tmp: __import__("dllmq").Recipe.from_dict(
        {**__import__("dllmq").Recipe.parse("gptq:w4a16g128").to_dict(), "wbits": 3}), ValueError, r"'wbits'"),
    ("from-dict-not-dict", lambda tmp: __import__("dllmq").Recipe.from_dict("gptq:w4a16g128"), TypeError, r"dict"),
]


# ----------------------------------------------------------------------------------------------- quantize


def _q(recipe="rtn:w4a16", calib=None, model=None, **kw):
    def call(tmp):
        from dllmq import quantize
        net = _model("llada")[0] if model is None else model()
        return quantize(net, recipe, calib() if callable(calib) else calib, **kw)
    return call


QUANTIZE = [
    ("calib-float", _q("gptq:w4a16g32", lambda: _ids(dtype=torch.float32)), TypeError, r"calib.*integer"),
    ("calib-bool", _q("gptq:w4a16g32", lambda: _ids() > 50), TypeError, r"calib.*integer"),
    ("calib-1d", _q("gptq:w4a16g32", lambda: _ids()[0]), ValueError, r"calib.*\(n"),
    ("calib-3d", _q("gptq:w4a16g32", lambda: _ids()[None]), ValueError, r"calib.*\(n"),
    ("calib-no-rows", _q("gptq:w4a16g32", lambda: _ids(0, 16)), ValueError, r"calib.*empty"),
    ("calib-no-columns", _q("gptq:w4a16g32", lambda: _ids(2, 0)), ValueError, r"calib.*empty"),
    ("calib-id-too-large", _q("gptq:w4a16g32", lambda: _ids() + 1000), ValueError, r"calib.*vocab"),
    ("calib-negative-id", _q("gptq:w4a16g32", lambda: -_ids()), ValueError, r"calib.*vocab"),
    ("calib-list", _q("gptq:w4a16g32", lambda: [[4, 5, 6]]), TypeError, r"calib"),
    ("calib-too-long", _q("gptq:w4a16g32", lambda: _ids(2, 600)), ValueError, r"calib.*max"),
    ("calib-float-rtn", _q("rtn:w4a16g32", lambda: _ids(dtype=torch.float32)), TypeError, r"calib"),
    ("model-string", lambda tmp: __import__("dllmq").quantize("tiny", "rtn:w4a16"), TypeError, r"model='tiny'"),
    ("model-not-llm", lambda tmp: __import__("dllmq").quantize(nn.Linear(4, 4), "rtn:w4a16"), ValueError,
     r"model.*Layout"),
    ("batch-size-0", _q("gptq:w4a16g32", _ids, batch_size=0), ValueError, r"batch_size=0"),
    ("batch-size-str", _q("gptq:w4a16g32", _ids, batch_size="8"), TypeError, r"batch_size='8'"),
    ("device-tpu", _q("gptq:w4a16g32", _ids, device="tpu"), ValueError, r"device='tpu'.*allowed"),
    ("device-missing-gpu", _q("gptq:w4a16g32", _ids, device="cuda:99"), ValueError, r"device='cuda:99'"),
    ("inplace-str", _q("rtn:w4a16", inplace="yes"), TypeError, r"inplace"),
    ("unknown-option", _q("rtn:w4a16", foo=1), TypeError, r"foo"),
    ("tok-not-tokenizer", _q("gptq:w4a16g32", tok="tiny"), TypeError, r"tok="),
    ("needs-calibration", _q("gptq:w4a16g32"), ValueError, r"calib"),
    ("group-does-not-divide", _q("rtn:w4a16g48"), ValueError, r"group_size=48"),
    ("rtn-roles-unknown", _q("rtn:w4a16", roles=("x",)), ValueError, r"roles.*allowed"),
    ("rtn-roles-str", _q("rtn:w4a16", roles="q"), TypeError, r"roles"),
    ("recipe-bad", _q("rtn:w16a16"), ValueError, r"quantizes nothing"),
    # refused before the first module changes: the caller's model is left exactly as it was
    ("unchanged-quarot-no-hadamard", refused_unchanged(
        lambda: _fresh("llada", d_model=48, n_heads=3, n_kv_heads=3), "quarot:w8a8:weights=rtn", _ids),
     ValueError, r"hadamard_fallback"),
    ("unchanged-quarot-head-dim-qk-rotation", refused_unchanged(
        lambda: _fresh("llada", d_model=24, n_heads=4, n_kv_heads=4, mlp_hidden_size=64),
        "quarot:w8a8:kv=8,weights=rtn,hadamard_fallback=orthogonal", _ids), ValueError, r"head_dim=6"),
    ("unchanged-duquant-head-dim-qk-rotation", refused_unchanged(
        lambda: _fresh("llada", d_model=24, n_heads=4, n_kv_heads=4, mlp_hidden_size=64),
        "duquant:w8a8:q=8,kv=8,block_size=8,rotation_steps=2", _ids), ValueError, r"head_dim=6"),
    ("unchanged-duquant-block-size", refused_unchanged(
        lambda: _fresh("llada"), "duquant:w8a8:block_size=48,rotation_steps=2", _ids), ValueError,
     r"block_size=48"),
    ("unchanged-group-size", refused_unchanged(lambda: _fresh("llada"), "gptq:w4a16g48", _ids), ValueError,
     r"group_size=48"),
    ("unchanged-calib-float", refused_unchanged(
        lambda: _fresh("llada"), "smoothquant:w8a8", lambda: _ids(dtype=torch.float32)), TypeError, r"calib"),
    ("unchanged-calib-vocab", refused_unchanged(lambda: _fresh("dream"), "awq:w4a16g32", lambda: _ids() + 500),
     ValueError, r"calib.*vocab"),
    ("unchanged-bad-option", refused_unchanged(lambda: _fresh("llada"), "rtn:w4a16", roles=("q", "z")),
     ValueError, r"roles"),
]


# ----------------------------------------------------------------------------------------------- generate


def _gen(prompts=("Q: 1+1=",), family="llada", model=None, tok=None, **kw):
    kw = {"steps": 4, "gen_length": 8, "block_length": 8 if family == "llada" else None, **kw}
    if kw["block_length"] is None:
        kw.pop("block_length")

    def call(tmp):
        from dllmq import generate
        m, t = _model(family) if model is None else model()
        return generate(m, t if tok is None else tok, prompts() if callable(prompts) else prompts, **kw)
    return call


def _no_mask_id():
    m, t = _fresh("llada")
    m.config.mask_token_id = None
    return m, t


def _mask_id_beyond_vocab():
    m, t = _fresh("llada")
    m.config.mask_token_id = 126336
    return m, t


GENERATE = [
    ("prompts-empty", _gen([]), ValueError, r"prompts is empty"),
    ("prompts-str", _gen("Q: 1+1="), TypeError, r"prompts"),
    ("prompts-ints", _gen([1, 2]), TypeError, r"prompts\[0\]"),
    ("prompts-none", _gen(None), TypeError, r"prompts"),
    ("prompts-one-none", _gen(["ok", None]), TypeError, r"prompts\[1\]"),
    ("temperature-str", _gen(temperature="hot"), TypeError, r"temperature='hot'"),
    ("temperature-none", _gen(temperature=None), TypeError, r"temperature=None"),
    ("temperature-nan", _gen(temperature=float("nan")), ValueError, r"temperature=nan"),
    ("temperature-negative", _gen(temperature=-1.0), ValueError, r"temperature=-1"),
    ("steps-0", _gen(steps=0), ValueError, r"steps=0"),
    ("steps-float", _gen(steps=2.5), ValueError, r"steps=2.5"),
    ("steps-bool", _gen(steps=True), ValueError, r"steps=True"),
    ("gen-length-str", _gen(gen_length="8"), ValueError, r"gen_length='8'"),
    ("gen-length-0", _gen(gen_length=0, block_length=None), ValueError, r"gen_length=0"),
    ("block-length-not-dividing", _gen(block_length=3), ValueError, r"block_length=3"),
    ("block-length-0", _gen(block_length=0), ValueError, r"block_length=0"),
    ("steps-not-multiple-of-blocks", _gen(steps=3, block_length=4), ValueError, r"steps=3"),
    ("steps-over-gen-length", _gen(steps=16), ValueError, r"steps=16"),
    ("remasking", _gen(remasking="foo"), ValueError, r"remasking='foo'.*allowed"),
    ("cfg-str", _gen(cfg_scale="x"), TypeError, r"cfg_scale='x'"),
    ("cfg-negative", _gen(cfg_scale=-1.0), ValueError, r"cfg_scale=-1"),
    ("seed-str", _gen(seed="a"), TypeError, r"seed='a'"),
    ("seed-float", _gen(seed=1.5), TypeError, r"seed=1.5"),
    ("batch-size-str", _gen(batch_size="2"), TypeError, r"batch_size='2'"),
    ("batch-size-0", _gen(batch_size=0), ValueError, r"batch_size=0"),
    ("sampler-mode", _gen(sampler_mode="x"), ValueError, r"sampler_mode='x'"),
    ("trace-str", _gen(trace="yes"), TypeError, r"trace='yes'"),
    ("stop-at-eos-str", _gen(stop_at_eos="no"), TypeError, r"stop_at_eos='no'"),
    ("eot-token-id-str", _gen(eot_token_id="x"), TypeError, r"eot_token_id='x'"),
    ("too-long", _gen(["a" * 500], gen_length=64, steps=8), ValueError, r"gen_length=64.*512"),
    ("gen-length-over-max", _gen(gen_length=600, steps=8, block_length=600), ValueError, r"gen_length=600.*512"),
    ("chat-template-missing", _gen(chat_template=True), ValueError, r"chat_template"),
    ("model-string", _gen(model=lambda: ("tiny", _model("llada")[1])), TypeError, r"model='tiny'"),
    ("model-autoregressive", _gen(model=lambda: _model("llama")), ValueError, r"autoregressive"),
    ("tok-none", _gen(model=lambda: (_model("llada")[0], None)), TypeError, r"tok"),
    ("mask-token-missing", _gen(model=_no_mask_id), ValueError, r"mask_token_id"),
    ("mask-token-beyond-vocab", _gen(model=_mask_id_beyond_vocab), ValueError, r"mask_token_id=126336"),
    ("dream-alg", _gen(family="dream", alg="foo"), ValueError, r"alg='foo'.*allowed"),
    ("dream-top-p-high", _gen(family="dream", top_p=1.5), ValueError, r"top_p=1.5"),
    ("dream-top-p-0", _gen(family="dream", top_p=0.0), ValueError, r"top_p=0"),
    ("dream-top-k-0", _gen(family="dream", top_k=0), ValueError, r"top_k=0"),
    ("dream-top-k-str", _gen(family="dream", top_k="5"), ValueError, r"top_k='5'"),
    ("dream-alg-temp-negative", _gen(family="dream", alg_temp=-1.0), ValueError, r"alg_temp=-1"),
    ("dream-block-length", _gen(family="dream", block_length=4), ValueError, r"block_length=4"),
    ("dream-empty-prompt", _gen([""], family="dream"), ValueError, r"prompts\[0\].*empty"),
    ("llada-sample-float-ids", lambda tmp: __import__("dllmq.decoding", fromlist=["x"]).llada_sample(
        _model("llada")[0], torch.zeros(1, 3), steps=2, gen_length=4, block_length=4), TypeError, r"input_ids"),
]


# ----------------------------------------------------------------------------------------------- likelihood


def _ll(pairs=(("Q: 1+1=", " 2"),), family="llada", model=None, tok=None, **kw):
    kw = {"mc_samples": 2, "batch_size": 2, **kw}

    def call(tmp):
        from dllmq import loglikelihood
        m, t = _model(family) if model is None else model()
        return loglikelihood(m, t if tok is None else tok, pairs, **kw)
    return call


def _mc(contexts, continuations, family="llada", **kw):
    kw = {"mc_samples": 2, "batch_size": 2, **kw}

    def call(tmp):
        from dllmq.likelihood import mc_loglikelihood
        return mc_loglikelihood(_model(family)[0], contexts, continuations, **kw)
    return call


LIKELIHOOD = [
    ("pairs-empty", _ll([]), ValueError, r"pairs is empty"),
    ("pair-one-element", _ll([("a",)]), ValueError, r"pairs\[0\].*\(context, continuation\)"),
    ("pair-three-elements", _ll([("a", "b", "c")]), ValueError, r"pairs\[0\]"),
    ("pair-non-string-continuation", _ll([("a", 5)]), TypeError, r"continuation.*pairs\[0\]"),
    ("pair-non-string-context", _ll([(5, "a")]), TypeError, r"context.*pairs\[0\]"),
    ("pairs-str", _ll("abc"), TypeError, r"pairs"),
    ("pairs-single-tuple", _ll(("a", "b")), TypeError, r"pairs.*list of"),
    ("pairs-none", _ll(None), TypeError, r"pairs"),
    ("pair-empty-continuation", _ll([("a", "")]), ValueError, r"continuation.*empty"),
    ("mc-samples-0", _ll(mc_samples=0), ValueError, r"mc_samples=0"),
    ("mc-samples-str", _ll(mc_samples="8"), TypeError, r"mc_samples='8'"),
    ("mc-samples-float", _ll(mc_samples=2.5), TypeError, r"mc_samples=2.5"),
    ("batch-size-0", _ll(batch_size=0), ValueError, r"batch_size=0"),
    ("seed-str", _ll(seed="x"), TypeError, r"seed='x'"),
    ("cfg-str", _ll(cfg_scale="x"), TypeError, r"cfg_scale='x'"),
    ("cfg-negative", _ll(cfg_scale=-1.0), ValueError, r"cfg_scale=-1"),
    ("definition", _ll(definition="x"), ValueError, r"definition='x'"),
    ("return-stderr-str", _ll(return_stderr="yes"), TypeError, r"return_stderr"),
    ("too-long", _ll([("a" * 600, " b")]), ValueError, r"512"),
    ("model-autoregressive", _ll(model=lambda: _model("llama")), ValueError, r"autoregressive"),
    ("model-string", _ll(model=lambda: ("tiny", _model("llada")[1])), TypeError, r"model='tiny'"),
    ("tok-none", _ll(model=lambda: (_model("llada")[0], None)), TypeError, r"tok"),
    ("dream-empty-context-bare", _ll([("", " a")], family="dream", definition="bare"), ValueError,
     r"context.*empty"),
    ("mc-length-mismatch", _mc([[5]], [[6], [7]]), ValueError, r"contexts.*continuations"),
    ("mc-id-beyond-vocab", _mc([[5]], [[6, 5000]]), ValueError, r"continuations\[0\].*vocab"),
    ("mc-id-negative", _mc([[-5]], [[6]]), ValueError, r"contexts\[0\].*vocab"),
    ("mc-float-id", _mc([[5]], [[1.5]]), TypeError, r"continuations\[0\]"),
    ("mc-group-not-dividing", _mc([[5]], [[6, 7]], mc_samples=8, group_size=3), ValueError, r"group_size=3"),
    ("mc-group-0", _mc([[5]], [[6, 7]], group_size=0), ValueError, r"group_size=0"),
    ("mc-too-long", _mc([[5] * 600], [[6]]), ValueError, r"512"),
    ("mc-contexts-str", _mc("abc", "def"), TypeError, r"contexts"),
]


# ----------------------------------------------------------------------------------------------- load_model


def _load(path_fn, **kw):
    def call(tmp):
        from dllmq import load_model
        return load_model(str(path_fn(tmp)), **kw)
    return call


def _saved(family="llada", config=None, weights=None, drop=()):
    """A copy of the saved FP model with its config / weights edited or files removed."""
    def make(tmp):
        path = _copy(tmp, family)
        if config is not None:
            _edit_json(path / "config.json", config)
        if weights is not None:
            weights(path / "model.safetensors")
        for name in drop:
            (path / name).unlink()
        return path
    return make


def _without(*keys):
    return lambda cfg: [cfg.pop(k) for k in keys] and None


def _drop_block_weight(path):
    _edit_weights(path, lambda t: t.pop(_block_key(t)))


def _reshape_block_weight(path):
    def edit(t):
        key = _block_key(t)
        t[key] = torch.zeros(t[key].shape[0] + 1, *t[key].shape[1:])
    _edit_weights(path, edit)


def _as_pickle(path):
    from safetensors.torch import load_file
    torch.save(load_file(str(path)), path.parent / "pytorch_model.bin")
    path.unlink()


LOAD_MODEL = [
    ("missing-absolute-dir", _load(lambda tmp: tmp / "nope"), FileNotFoundError, r"nope.*does not exist"),
    ("missing-relative-dir", lambda tmp: __import__("dllmq").load_model("./no/such/model"), FileNotFoundError,
     r"no/such/model"),
    ("dir-without-config", _load(lambda tmp: tmp), FileNotFoundError, r"config.json"),
    ("config-not-json", _load(_saved(config=lambda cfg: "{not json")), ValueError, r"config.json.*JSON"),
    ("config-a-list", _load(_saved(config=lambda cfg: [1, 2])), ValueError, r"config.json.*object"),
    ("config-no-model-type", _load(_saved(config=_without("model_type"))), ValueError, r"model_type"),
    ("config-unknown-model-type", _load(_saved(config=lambda cfg: cfg.update(model_type="gpt2"))), ValueError,
     r"model_type='gpt2'.*supported"),
    ("llada-no-n-layers", _load(_saved(config=_without("n_layers"))), ValueError, r"n_layers"),
    ("llada-no-d-model", _load(_saved(config=_without("d_model"))), ValueError, r"d_model"),
    ("llada-no-mask-token", _load(_saved(config=_without("mask_token_id"))), ValueError, r"mask_token_id"),
    ("llada-no-n-heads", _load(_saved(config=_without("n_heads"))), ValueError, r"n_heads"),
    ("llada-no-vocab", _load(_saved(config=_without("vocab_size"))), ValueError, r"vocab_size"),
    ("llada-n-layers-str", _load(_saved(config=lambda cfg: cfg.update(n_layers="four"))), ValueError,
     r"n_layers='four'"),
    ("llada-n-layers-0", _load(_saved(config=lambda cfg: cfg.update(n_layers=0))), ValueError, r"n_layers=0"),
    ("llada-mask-beyond-vocab", _load(_saved(config=lambda cfg: cfg.update(mask_token_id=126336))), ValueError,
     r"mask_token_id=126336"),
    ("dream-no-hidden-size", _load(_saved("dream", config=_without("hidden_size"))), ValueError, r"hidden_size"),
    ("dream-no-layers", _load(_saved("dream", config=_without("num_hidden_layers"))), ValueError,
     r"num_hidden_layers"),
    ("dream-no-mask-token", _load(_saved("dream", config=_without("mask_token_id"))), ValueError, r"mask_token_id"),
    ("weights-missing", _load(_saved(drop=("model.safetensors",))), FileNotFoundError, r"model.safetensors"),
    ("weights-truncated", _load(_saved(weights=_truncate)), ValueError, r"model.safetensors.*(corrupt|truncated)"),
    ("weights-garbage", _load(_saved(weights=lambda p: p.write_bytes(b"\x00garbage" * 10))), ValueError,
     r"model.safetensors"),
    ("weights-block-missing", _load(_saved(weights=_drop_block_weight)), ValueError, r"missing.*blocks\.1\."),
    ("weights-wrong-shape", _load(_saved(weights=_reshape_block_weight)), ValueError, r"shape"),
    ("weights-pickle-only", _load(_saved(weights=_as_pickle)), FileNotFoundError, r"safetensors"),
    ("tokenizer-missing", _load(_saved(drop=("tokenizer.json", "tokenizer_config.json"))), FileNotFoundError,
     r"tokenizer"),
    ("device-tpu", lambda tmp: __import__("dllmq").load_model("tiny-random", device="tpu"), ValueError,
     r"device='tpu'.*allowed"),
    ("device-missing-gpu", lambda tmp: __import__("dllmq").load_model("tiny-random", device="cuda:99"), ValueError,
     r"device='cuda:99'"),
    ("dtype-unknown-str", lambda tmp: __import__("dllmq").load_model("tiny-random", dtype="float99"), ValueError,
     r"dtype='float99'.*allowed"),
    ("dtype-int", lambda tmp: __import__("dllmq").load_model("tiny-random", dtype=5), TypeError, r"dtype=5"),
    ("dtype-integer-type", lambda tmp: __import__("dllmq").load_model("tiny-random", dtype=torch.int8), ValueError,
     r"dtype=torch.int8"),
    ("name-none", lambda tmp: __import__("dllmq").load_model(None), TypeError, r"name=None"),
    ("name-int", lambda tmp: __import__("dllmq").load_model(5), TypeError, r"name=5"),
    ("name-empty", lambda tmp: __import__("dllmq").load_model(""), ValueError, r"name=''"),
    ("name-unknown", lambda tmp: __import__("dllmq").load_model("tiny-random-gpt"), ValueError,
     r"name='tiny-random-gpt'.*known"),
]


# ----------------------------------------------------------------------------------------------- load/save quantized


def _lq(edit=None, **kw):
    def call(tmp):
        from dllmq.quant import load_quantized
        path = _copy(tmp, "quant")
        if edit is not None:
            edit(path)
        return load_quantized(path, **kw)
    return call


def _meta(edit):
    return lambda path: _edit_json(path / "dllmq_quant.json", edit)


def _first_module(meta):
    return next(iter(meta["modules"]))


def _tamper_in_features(meta):
    name = next(n for n, s in meta["modules"].items() if s["type"] == "QuantLinear")
    meta["modules"][name]["config"]["in_features"] += 1


def _drop_tensor(path):
    _edit_weights(path / "model.safetensors", lambda t: t.pop(_block_key(t)))


def _sq(model=None, out=None, **kw):
    def call(tmp):
        from dllmq.quant import save_quantized
        net = _model("llada")[0] if model is None else model
        return save_quantized(net, out(tmp) if out else tmp / "out", **kw)
    return call


QUANTIZED = [
    ("missing-dir", lambda tmp: __import__("dllmq.quant", fromlist=["x"]).load_quantized(tmp / "nope"),
     FileNotFoundError, r"nope"),
    ("no-metadata", _lq(lambda p: (p / "dllmq_quant.json").unlink()), FileNotFoundError, r"dllmq_quant.json"),
    ("metadata-not-json", _lq(_meta(lambda m: "{oops")), ValueError, r"dllmq_quant.json.*JSON"),
    ("metadata-a-list", _lq(_meta(lambda m: [m])), ValueError, r"dllmq_quant.json.*object"),
    ("metadata-no-modules", _lq(_meta(lambda m: m.pop("modules") and None)), ValueError,
     r"dllmq_quant.json.*'modules'"),
    ("metadata-no-dtype", _lq(_meta(lambda m: m.pop("dtype") and None)), ValueError, r"dllmq_quant.json.*'dtype'"),
    ("metadata-no-model-type", _lq(_meta(lambda m: m.pop("model_type") and None)), ValueError,
     r"dllmq_quant.json.*'model_type'"),
    ("metadata-format", _lq(_meta(lambda m: m.update(format="v0"))), ValueError, r"format='v0'"),
    ("metadata-dtype-unknown", _lq(_meta(lambda m: m.update(dtype="float99"))), ValueError, r"dtype='float99'"),
    ("metadata-dtype-not-dtype", _lq(_meta(lambda m: m.update(dtype="Tensor"))), ValueError, r"dtype='Tensor'"),
    ("metadata-module-type", _lq(_meta(lambda m: m["modules"][_first_module(m)].update(type="EvilModule"))),
     ValueError, r"EvilModule.*known"),
    ("metadata-module-path",
     _lq(_meta(lambda m: m["modules"].update({"model.nope.q": m["modules"][_first_module(m)]}))), ValueError,
     r"model.nope.q"),
    ("metadata-module-not-dict", _lq(_meta(lambda m: m["modules"].update({_first_module(m): 5}))), ValueError,
     r"modules"),
    ("metadata-module-config", _lq(_meta(_tamper_in_features)), ValueError, r"(shape|in_features)"),
    ("metadata-module-config-key", _lq(_meta(lambda m: m["modules"][_first_module(m)]["config"].update(evil=1))),
     ValueError, r"evil"),
    ("metadata-recipe", _lq(_meta(lambda m: m.update(recipe="rtn:w99a16"))), ValueError, r"recipe"),
    ("metadata-model-type-mismatch", _lq(_meta(lambda m: m.update(model_type="Dream"))), ValueError,
     r"model_type"),
    ("weights-missing", _lq(lambda p: (p / "model.safetensors").unlink()), FileNotFoundError, r"model.safetensors"),
    ("weights-truncated", _lq(lambda p: _truncate(p / "model.safetensors")), ValueError,
     r"model.safetensors.*(corrupt|truncated)"),
    ("weights-garbage", _lq(lambda p: (p / "model.safetensors").write_bytes(b"12345678" * 20)), ValueError,
     r"model.safetensors"),
    ("weights-tensor-missing", _lq(_drop_tensor), ValueError, r"missing.*blocks\.1\."),
    ("config-missing", _lq(lambda p: (p / "config.json").unlink()), FileNotFoundError, r"config.json"),
    ("config-not-json", _lq(lambda p: (p / "config.json").write_text("{")), ValueError, r"config.json.*JSON"),
    ("config-no-n-layers", _lq(lambda p: _edit_json(p / "config.json", _without("n_layers"))), ValueError,
     r"n_layers"),
    ("device-tpu", _lq(device="tpu"), ValueError, r"device='tpu'"),
    ("path-none", lambda tmp: __import__("dllmq.quant", fromlist=["x"]).load_quantized(None), TypeError, r"path"),
    ("save-model-str", _sq(model="tiny"), TypeError, r"model"),
    ("save-model-no-config", _sq(model=nn.Linear(2, 2)), TypeError, r"model"),
    ("save-out-is-file", _sq(out=lambda tmp: (tmp / "f").write_text("x") and tmp / "f"), ValueError, r"out_dir"),
    ("save-recipe-invalid", _sq(recipe="rtn:w99a16"), ValueError, r"w_bits=99|recipe"),
    ("save-packed-str", _sq(packed="yes"), TypeError, r"packed"),
    ("save-tok-not-tokenizer", _sq(tok=5), TypeError, r"tok"),
]


# ----------------------------------------------------------------------------------------------- calibration


def _cal(source="text", tok=True, **kw):
    def call(tmp):
        from dllmq.calibration import get_calibration
        return get_calibration(source, _model("llada")[1] if tok is True else tok, **{"n_samples": 2, "seq_len": 16,
                                                                                        **kw})
    return call


def _spec(**kw):
    return lambda tmp: __import__("dllmq.calibration", fromlist=["x"]).CalibSpec(**kw)


CALIBRATION = [
    ("source-unknown", _cal("books"), ValueError, r"source='books'.*allowed"),
    ("n-samples-0", _cal(n_samples=0), ValueError, r"n_samples=0"),
    ("n-samples-bool", _cal(n_samples=True), ValueError, r"n_samples=True"),
    ("seq-len-str", _cal(seq_len="x"), ValueError, r"seq_len='x'"),
    ("seq-len-too-long", _cal(seq_len=10 ** 7), ValueError, r"seq_len"),
    ("seed-negative", _cal(seed=-1), ValueError, r"seed=-1"),
    ("seed-str", _cal(seed="a"), ValueError, r"seed='a'"),
    ("mask-ratio-2", _cal(mask_ratio=2.0), ValueError, r"mask_ratio=2"),
    ("mask-ratio-str", _cal(mask_ratio="half"), ValueError, r"mask_ratio='half'"),
    ("tok-none", _cal(tok=None), TypeError, r"tok=None"),
    ("tok-str", _cal(tok="tiny"), TypeError, r"tok='tiny'"),
    ("hub-offline", _cal("wikitext2"), Exception, r"offline"),
    ("spec-source", _spec(source="books"), ValueError, r"source='books'"),
    ("spec-source-int", _spec(source=5), ValueError, r"source=5"),
    ("spec-n-samples", _spec(n_samples=0), ValueError, r"n_samples=0"),
    ("spec-seq-len-float", _spec(seq_len=1.5), ValueError, r"seq_len=1.5"),
    ("spec-seed", _spec(seed=-1), ValueError, r"seed=-1"),
    ("spec-mask-ratio", _spec(mask_ratio=0.0), ValueError, r"mask_ratio=0.0"),
    ("calibration-for-not-recipe", lambda tmp: __import__("dllmq.calibration", fromlist=["x"]).calibration_for(
        5, _model("llada")[1]), TypeError, r"recipe=5"),
    ("calibration-for-bad-override", lambda tmp: __import__("dllmq.calibration", fromlist=["x"]).calibration_for(
        __import__("dllmq").Recipe.parse("gptq:w4a16g128:calib=text"), _model("llada")[1], sourc="x"), TypeError,
     r"sourc"),
]


# ----------------------------------------------------------------------------------------------- store


def _line(**changes):
    base = {"model": "m", "recipe": "fp", "task": "t", "metric": "acc", "variant": "", "value": 0.5,
            "stderr": None, "n": None, "category": None, "cell": "c9", "write": "w9", "group": 1,
            "timestamp": "2026-01-01T00:00:00", "settings": {}, "versions": {}}
    for key, value in changes.items():
        if value is _DROP:
            base.pop(key)
        else:
            base[key] = value
    return json.dumps(base)


_DROP = object()


def _read_store(line: str, method: str = "records"):
    def call(tmp):
        from dllmq.sweeps.store import ResultStore
        path = _copy(tmp, "store")
        with open(path, "a") as handle:
            handle.write(line + "\n")
        return getattr(ResultStore(path), method)()
    return call


def _append(rows, cell_id="c", model="m", recipe="fp"):
    def call(tmp):
        from dllmq.sweeps.store import ResultStore
        return ResultStore(tmp / "s.jsonl").append_cell(cell_id, rows, model=model, recipe=recipe)
    return call


STORE = [
    ("line-without-value", _read_store(_line(value=_DROP)), ValueError, r"line 3.*'value'"),
    ("line-without-value-done-cells", _read_store(_line(value=_DROP), "done_cells"), ValueError, r"line 3.*'value'"),
    ("line-without-cell", _read_store(_line(cell=_DROP)), ValueError, r"line 3.*'cell'"),
    ("line-without-task", _read_store(_line(task=_DROP)), ValueError, r"line 3.*'task'"),
    ("line-without-metric", _read_store(_line(metric=_DROP)), ValueError, r"line 3.*'metric'"),
    ("line-without-recipe", _read_store(_line(recipe=_DROP)), ValueError, r"line 3.*'recipe'"),
    ("line-group-str", _read_store(_line(group="2")), ValueError, r"line 3.*group='2'"),
    ("line-group-0", _read_store(_line(group=0)), ValueError, r"line 3.*group=0"),
    ("line-group-bool", _read_store(_line(group=True)), ValueError, r"line 3.*group=True"),
    ("line-value-str", _read_store(_line(value="0.5")), ValueError, r"line 3.*value='0.5'"),
    ("line-value-dict", _read_store(_line(value={"a": 1})), ValueError, r"line 3.*value="),
    ("line-model-int", _read_store(_line(model=5)), ValueError, r"line 3.*model=5"),
    ("line-settings-list", _read_store(_line(settings=[1])), ValueError, r"line 3.*settings"),
    ("line-stderr-str", _read_store(_line(stderr="x")), ValueError, r"line 3.*stderr='x'"),
    ("line-n-str", _read_store(_line(n="ten")), ValueError, r"line 3.*n='ten'"),
    ("line-json-list", _read_store("[1, 2]"), ValueError, r"line 3.*object"),
    ("line-json-string", _read_store('"hello"'), ValueError, r"line 3.*object"),
    ("append-row-without-value", _append([{"task": "t", "metric": "m"}]), ValueError, r"value"),
    ("append-rows-dict", _append({"task": "t", "metric": "m", "value": 1.0}), TypeError, r"rows"),
    ("append-row-tuple", _append([("t", "m", 1.0)]), TypeError, r"rows\[0\]"),
    ("append-value-str", _append([{"task": "t", "metric": "m", "value": "high"}]), ValueError, r"value='high'"),
    ("append-cell-id-empty", _append([{"task": "t", "metric": "m", "value": 1.0}], cell_id=""), ValueError,
     r"cell_id"),
    ("append-model-int", _append([{"task": "t", "metric": "m", "value": 1.0}], model=5), TypeError, r"model=5"),
    ("store-is-directory", lambda tmp: __import__("dllmq.sweeps.store", fromlist=["x"]).ResultStore(tmp).records(),
     ValueError, r"directory"),
    ("store-must-exist", lambda tmp: __import__("dllmq.sweeps.store", fromlist=["x"]).ResultStore(
        tmp / "none.jsonl", must_exist=True), FileNotFoundError, r"none.jsonl"),
    ("merge-missing-source", lambda tmp: __import__("dllmq.sweeps.store", fromlist=["x"]).merge_stores(
        [tmp / "a.jsonl"], tmp / "out.jsonl"), FileNotFoundError, r"a.jsonl"),
]


# ----------------------------------------------------------------------------------------------- sweep grid


def _cells(*specs):
    from dllmq.sweeps.sweep import make_cell
    return [make_cell(m, r, t, **v) for m, r, t, v in specs]


def _validate(*specs):
    def call(tmp):
        from dllmq.sweeps.validate import validate_cells
        return validate_cells(_cells(*specs))
    return call


GOOD = ("tiny-random", "fp", "tinybench_general", {})


def _grid_file(text):
    def call(tmp):
        from dllmq.sweeps.validate import read_grid_file
        path = tmp / "grid.json"
        path.write_text(text if isinstance(text, str) else json.dumps(text))
        return read_grid_file(path)
    return call


GRID_OK = {"models": ["tiny-random"], "recipes": ["fp"], "tasks": ["tinybench_general"]}

GRID = [
    ("bad-recipe", _validate(GOOD, ("tiny-random", "gptq:w4a16g128:bogus", "tinybench_general", {})), ValueError,
     r"cell 2.*recipe"),
    ("no-op-recipe", _validate(GOOD, ("tiny-random", "rtn:w16a16", "tinybench_general", {})), ValueError,
     r"quantizes nothing"),
    ("unknown-task", _validate(GOOD, ("tiny-random", "fp", "tinybench_poetry", {})), ValueError,
     r"task='tinybench_poetry'.*allowed"),
    ("unknown-paper-task", _validate(("GSAI-ML/LLaDA-8B-Instruct", "fp", "winogrand", {})), ValueError,
     r"task='winogrand'"),
    ("task-not-for-family", _validate(("Dream-org/Dream-v0-Instruct-7B", "fp", "gsm8k", {})), ValueError,
     r"task='gsm8k'"),
    ("variant-unknown-option", _validate(("tiny-random", "fp", "tinybench_general", {"stepz": 4})), ValueError,
     r"stepz.*allowed"),
    ("fidelity-option", _validate(("tiny-random", "rtn:w4a16", "fidelity", {"steps": 4})), ValueError,
     r"steps.*allowed"),
    ("fidelity-fp", _validate(("tiny-random", "fp", "fidelity", {})), ValueError, r"fidelity.*fp"),
    ("fidelity-ratio", _validate(("tiny-random", "rtn:w4a16", "fidelity", {"ratio": 2})), ValueError, r"ratio=2"),
    ("memory-no-backend", _validate(("tiny-random", "fp", "memory", {})), ValueError, r"backend"),
    ("memory-backend-unknown", _validate(("tiny-random", "fp", "memory", {"backend": "int3"})), ValueError,
     r"backend='int3'.*allowed"),
    ("memory-quant-backend-on-fp", _validate(("tiny-random", "fp", "memory", {"backend": "packed"})), ValueError,
     r"backend='packed'"),
    ("unknown-model", _validate(("tiny-random-gpt", "fp", "tinybench_general", {})), ValueError,
     r"model='tiny-random-gpt'"),
    ("missing-model-dir", _validate(("/no/such/model", "fp", "tinybench_general", {})), ValueError,
     r"/no/such/model"),
    ("variant-steps-str", _validate(("tiny-random", "fp", "tinybench_math", {"steps": "many"})), ValueError,
     r"steps='many'"),
    ("variant-remasking", _validate(("tiny-random", "fp", "tinybench_math", {"remasking": "foo"})), ValueError,
     r"remasking='foo'"),
    ("variant-block-length", _validate(("tiny-random", "fp", "tinybench_math",
                                        {"gen_length": 32, "block_length": 5, "steps": 8})), ValueError,
     r"block_length=5"),
    ("recipe-does-not-fit", _validate(("tiny-random", "rtn:w4a16g48", "tinybench_general", {})), ValueError,
     r"group_size=48"),
    ("not-a-cell", lambda tmp: __import__("dllmq.sweeps.validate", fromlist=["x"]).validate_cells(["tiny|fp"]),
     TypeError, r"cells\[0\]"),
    ("empty-grid", lambda tmp: __import__("dllmq.sweeps.validate", fromlist=["x"]).validate_cells([]), ValueError,
     r"empty"),
    ("file-invalid-json", _grid_file('{"models": ["tiny"],'), ValueError, r"grid.json.*JSON.*line 1"),
    ("file-a-list", _grid_file([1]), ValueError, r"grid.json.*object"),
    ("file-no-tasks", _grid_file({"models": ["tiny-random"], "recipes": ["fp"]}), ValueError, r"tasks"),
    ("file-models-str", _grid_file({**GRID_OK, "models": "tiny-random"}), ValueError, r"models.*list"),
    ("file-recipe-int", _grid_file({**GRID_OK, "recipes": ["fp", 5]}), ValueError, r"recipes\[1\]"),
    ("file-variants-not-dicts", _grid_file({**GRID_OK, "variants": ["steps=4"]}), ValueError, r"variants\[0\]"),
    ("file-unknown-key", _grid_file({**GRID_OK, "recipe": ["fp"]}), ValueError, r"'recipe'.*allowed"),
    ("file-missing", lambda tmp: __import__("dllmq.sweeps.validate", fromlist=["x"]).read_grid_file(tmp / "g.json"),
     FileNotFoundError, r"g.json"),
    ("file-empty-models", _grid_file({**GRID_OK, "models": []}), ValueError, r"models.*empty"),
    ("file-bad-recipe", _grid_file({**GRID_OK, "recipes": ["fp", "gptq:w4a16g128:kv=4"]}), ValueError,
     r"kv_bits"),
]


# ----------------------------------------------------------------------------------------------- task files


MC_ROW = {"prompt": "Q: 1+1?\nA:", "choices": ["1", "2"], "label": 1}
GEN_ROW = {"prompt": "Q: 1+1?\nA:", "answer": " 2"}


def _task(rows=None, output_type="multiple_choice", raw=None, extra=""):
    """A user task file (like TinyBench's) pointing at a jsonl written from `rows` (or `raw` text)."""
    def call(tmp):
        from dllmq.eval.tasks import validate_task_file
        data = tmp / "data.jsonl"
        if raw is not None:
            data.write_bytes(raw if isinstance(raw, bytes) else raw.encode())
        else:
            data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        fields = ("doc_to_text: prompt\ndoc_to_choice: choices\ndoc_to_target: label\n"
                  if output_type == "multiple_choice" else "doc_to_text: prompt\ndoc_to_target: answer\n")
        task = tmp / "mine.yaml"
        task.write_text(f"task: mine\noutput_type: {output_type}\n{fields}dataset_path: json\n"
                        f"dataset_kwargs:\n  data_files:\n    test: {data}\n{extra}")
        return validate_task_file(task)
    return call


def _row(base, **changes):
    row = dict(base)
    for key, value in changes.items():
        if value is _DROP:
            row.pop(key)
        else:
            row[key] = value
    return row


TASKFILES = [
    ("non-json-line", _task(raw=json.dumps(MC_ROW) + "\n{not json\n"), ValueError, r"data.jsonl.*line 2.*JSON"),
    ("row-without-choices", _task([MC_ROW, _row(MC_ROW, choices=_DROP)]), ValueError,
     r"data.jsonl.*line 2.*'choices'"),
    ("row-without-prompt", _task([_row(MC_ROW, prompt=_DROP)]), ValueError, r"line 1.*'prompt'"),
    ("row-without-label", _task([_row(MC_ROW, label=_DROP)]), ValueError, r"line 1.*'label'"),
    ("label-out-of-range", _task([_row(MC_ROW, label=5)]), ValueError, r"line 1.*label=5"),
    ("label-bool", _task([_row(MC_ROW, label=True)]), ValueError, r"line 1.*label=True"),
    ("choices-str", _task([_row(MC_ROW, choices="12")]), ValueError, r"line 1.*choices"),
    ("choices-empty", _task([_row(MC_ROW, choices=[])]), ValueError, r"line 1.*choices"),
    ("choices-not-strings", _task([_row(MC_ROW, choices=[1, 2])]), ValueError, r"line 1.*choices"),
    ("row-a-list", _task(raw="[1, 2]\n"), ValueError, r"line 1.*object"),
    ("no-rows", _task([]), ValueError, r"data.jsonl.*no rows"),
    ("generation-without-answer", _task([_row(GEN_ROW, answer=_DROP)], output_type="generate_until"), ValueError,
     r"line 1.*'answer'"),
    ("prompt-not-string", _task([_row(MC_ROW, prompt=5)]), ValueError, r"line 1.*prompt"),
    ("output-type-unknown", _task([MC_ROW], output_type="generate"), ValueError, r"output_type='generate'.*allowed"),
    ("not-utf8", _task(raw=b"\xff\xfe\x00bad\n"), ValueError, r"data.jsonl.*UTF-8"),
    ("template-field-missing", lambda tmp: _task_template(tmp), ValueError, r"line 1.*'question'"),
    ("data-files-int", lambda tmp: _task_data_files_int(tmp), ValueError, r"data_files"),
]


def _task_template(tmp):
    from dllmq.eval.tasks import validate_task_file
    data = tmp / "d.jsonl"
    data.write_text(json.dumps(GEN_ROW) + "\n")
    task = tmp / "t.yaml"
    task.write_text("task: t\noutput_type: generate_until\ndoc_to_text: 'Q: {{question}}'\ndoc_to_target: answer\n"
                    f"dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n")
    return validate_task_file(task)


def _task_data_files_int(tmp):
    from dllmq.eval.tasks import validate_task_file
    task = tmp / "t.yaml"
    task.write_text("task: t\noutput_type: generate_until\ndoc_to_text: prompt\ndataset_path: json\n"
                    "dataset_kwargs:\n  data_files: 5\n")
    return validate_task_file(task)


# ----------------------------------------------------------------------------------------------- the table


TABLES = {"recipe": RECIPE, "quantize": QUANTIZE, "generate": GENERATE, "likelihood": LIKELIHOOD,
          "load_model": LOAD_MODEL, "quantized": QUANTIZED, "calibration": CALIBRATION, "store": STORE,
          "grid": GRID, "taskfile": TASKFILES}
CASES = [pytest.param(call, exc, pattern, id=f"{cls}:{name}")
         for cls, table in TABLES.items() for name, call, exc, pattern in table]


@pytest.mark.parametrize("call, exc, pattern", CASES)
def test_bad_input_gives_a_clear_error(call, exc, pattern, tmp_path):
    with pytest.raises(exc, match=pattern):
        call(tmp_path)


def test_every_class_has_many_cases_and_ids_are_unique():
    ids = [p.id for p in CASES]
    assert len(ids) == len(set(ids))
    assert all(len(table) >= 15 for table in TABLES.values())
    assert len(ids) > 250


# ----------------------------------------------------------------------------------------------- what stays valid


PRESET_MODELS = ("tiny", "tiny-random-dream", "GSAI-ML/LLaDA-8B-Instruct", "Dream-org/Dream-v0-Instruct-7B")


@pytest.mark.parametrize("model", PRESET_MODELS)
def test_every_paper_preset_parses_round_trips_and_fits(model):
    from dllmq import Recipe
    from dllmq.quant.presets import PAPER_METHOD_SETTINGS, VARIANTS

    for method, settings in PAPER_METHOD_SETTINGS.items():
        for setting in settings:
            for variant in VARIANTS:
                recipe = Recipe.paper(method, setting, variant, model=model)
                assert Recipe.parse(str(recipe)) == recipe
                assert Recipe.from_dict(recipe.to_dict()) == recipe


DREAM_PRESETS = ("table5", "demo", "lowbit", "dream_wa")  # the rest ask for LLaDA-only paper tasks (gsm8k, mmlu)


@pytest.mark.parametrize("model", PRESET_MODELS)
def test_every_sweep_preset_grid_validates(model):
    """The presets (paper tables, demo, studies) are valid grids: recipes parse and fit, tasks exist, options
    are allowed. On the Dream hub model the LLaDA-task presets are refused before any cell runs."""
    from dllmq.sweeps.presets import PRESETS
    from dllmq.sweeps.validate import validate_cells

    for name, preset in PRESETS.items():
        for reduced in (False, True):
            if model.startswith("Dream-org") and name not in DREAM_PRESETS:
                with pytest.raises(ValueError, match="task="):
                    validate_cells(preset.cells(model, reduced=reduced))
                continue
            cells = preset.cells(model, reduced=reduced)
            assert validate_cells(cells) == cells, name


def test_valid_settings_the_rules_must_not_refuse():
    from dllmq import Recipe
    from dllmq.calibration import CalibSpec

    for text in ("rtn:w16a16:kv=4", "rtn:w16a8", "rtn:w4a16:a_sym,aclip=0.9,kv=8", "quarot:w4a16", "quarot:w16a4",
                 "gptq:w4a16g128:static_groups", "awq:w4a16g128:clip=false", "quarot:w4a4:kv=4,kv_clip=0.95",
                 "duquant:w4a4:smoothing=none", "gptq:w3a16g128:sym,conv=gptq", "rtn:w4a8:a_sym,conv=gptq"):
        recipe = Recipe.parse(text)
        assert str(recipe) == text and Recipe.parse(str(recipe)) == recipe
    assert CalibSpec(mask_ratio=1).mask_ratio == 1.0


def test_rule_tables_name_existing_knobs_and_choices():
    """KNOB_NEEDS / KNOB_CHOICES / KNOB_RANGES follow the methods' KNOBS (a renamed knob fails here)."""
    from dllmq.quant.recipe import KNOB_CHOICES, KNOB_NEEDS, KNOB_RANGES, knob_choices
    from dllmq.quant.registry import method_knobs

    for table in (KNOB_NEEDS, KNOB_CHOICES, KNOB_RANGES):
        for method, knobs in table.items():
            assert set(knobs) <= set(method_knobs(method)), (method, set(knobs) - set(method_knobs(method)))
    for method, knobs in KNOB_CHOICES.items():
        for knob in knobs:
            assert method_knobs(method)[knob] in knob_choices(method, knob)  # the default is allowed


def test_load_model_accepts_a_dtype_name():
    from dllmq import load_model

    model, _ = load_model("tiny-random", device="cpu", dtype="float32")
    assert next(model.parameters()).dtype == torch.float32
    model, _ = load_model("tiny-random", device="cpu", dtype="bf16")
    assert next(model.parameters()).dtype == torch.bfloat16


def test_saved_checkpoints_still_load_exactly(tmp_path):
    from dllmq import load_model
    from dllmq.quant import load_quantized

    ids = _ids(1, 8)
    model, _ = load_model(str(ART["llada"]), device="cpu")
    ref, _ = _fresh("llada")
    assert torch.equal(model(ids).logits, ref(ids).logits)
    qmodel, tok, recipe = load_quantized(ART["quant"])
    assert recipe == "rtn:w4a8g32:kv=8" and tok is not None and torch.isfinite(qmodel(ids).logits).all()


def test_store_repair_drops_lines_that_break_the_schema(tmp_path):
    from dllmq.sweeps.store import ResultStore, StoreFormatError

    path = _copy(tmp_path, "store")
    with open(path, "a") as handle:
        handle.write(_line(value=_DROP) + "\n" + _line(group="2", cell="c8") + "\n")
    store = ResultStore(path)
    with pytest.raises(StoreFormatError, match="line 3"):
        store.records()
    assert store.repair() == 2 and store.invalid_lines == 2
    assert store.done_cells() == {"c1"} and len(store.records()) == 2


def test_mc_likelihood_accepts_no_requests_and_an_empty_llada_context():
    """What lm-eval's rolling windows send: nothing on an idle rank, an empty first context for LLaDA."""
    from dllmq.likelihood import mc_loglikelihood

    model = _model("llada")[0]
    assert mc_loglikelihood(model, [], [], mc_samples=2) == []
    (value, se), = mc_loglikelihood(model, [[]], [[5, 6]], mc_samples=2, batch_size=2)
    assert value < 0 and se >= 0


def test_grid_error_lists_every_bad_cell_before_any_runs():
    from dllmq.sweeps.validate import GridError, validate_cells

    cells = _cells(GOOD, ("tiny-random", "rtn:w16a16", "tinybench_general", {}), GOOD,
                   ("tiny-random", "fp", "nope", {}))
    with pytest.raises(GridError) as info:
        validate_cells(cells)
    text = str(info.value)
    assert text.startswith("2 of 4 cells are invalid") and "cell 2 " in text and "cell 4 " in text
    assert "cell 1 " not in text and "cell 3 " not in text
    # a custom cell function gives models, recipes and tasks its own meaning: only the structure is checked
    custom = _cells(("m", "my-recipe", "my_task", {"k": 1}))
    assert validate_cells(custom, builtin_runner=False) == custom
    with pytest.raises(GridError):
        validate_cells(custom)
    with pytest.raises(TypeError, match=r"cells\[0\]"):
        validate_cells(["m|fp|t|"], builtin_runner=False)


def test_read_grid_file_returns_the_checked_spec(tmp_path):
    from dllmq.sweeps.sweep import grid
    from dllmq.sweeps.validate import read_grid_file

    path = tmp_path / "grid.json"
    path.write_text(json.dumps({**GRID_OK, "variants": [{"mc_samples": 4}]}))
    spec = read_grid_file(path)
    cells = grid(**spec)
    assert [c.key for c in cells] == ["tiny-random|fp|tinybench_general|mc_samples=4"]
    path.write_text(json.dumps({"models": ["m"], "recipes": ["r"], "tasks": ["t"]}))  # for a custom cell function
    assert read_grid_file(path, builtin_runner=False)["variants"] == [{}]
    with pytest.raises(ValueError, match="model='m'"):
        read_grid_file(path)


def test_shipped_tinybench_rows_validate():
    from dllmq.eval.tasks import DATA_DIR, TASKS, validate_jsonl_rows

    for spec in TASKS.values():
        for name in spec.files.values():
            if name.endswith(".jsonl"):
                assert validate_jsonl_rows(DATA_DIR / name, {"output_type": spec.config["output_type"],
                                                             **{k: spec.config.get(k) for k in
                                                                ("doc_to_text", "doc_to_target", "doc_to_choice")}}) > 0


def test_run_sweep_refuses_a_bad_grid_before_the_first_cell(tmp_path):
    """With the built-in runner every cell is checked first: a bad last cell means no cell ran, no store line."""
    from dllmq.sweeps.runner import CellRunner
    from dllmq.sweeps.sweep import run_sweep
    from dllmq.sweeps.validate import GridError

    calls = []

    class Runner(CellRunner):
        def __call__(self, cell):
            calls.append(cell.key)
            return [{"task": "t", "metric": "acc", "value": 1.0}]

    cells = _cells(GOOD, ("tiny-random", "fp", "tinybench_poetry", {}))
    with pytest.raises(GridError, match="1 of 2 cells"):
        run_sweep(cells, Runner(), tmp_path / "s.jsonl", progress=False)
    assert calls == [] and not (tmp_path / "s.jsonl").exists()
    with pytest.raises(TypeError, match="cell_fn"):
        run_sweep(cells, "not a function", tmp_path / "s.jsonl", progress=False)
    # a custom cell function (no checks_cells) gives the task names its own meaning
    summary = run_sweep(cells, lambda cell: calls.append(cell.key) or [{"task": "t", "metric": "m", "value": 1.0}],
                        tmp_path / "s.jsonl", progress=False)
    assert summary.ran == 2 and len(calls) == 2


def _cli(*argv):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "dllmq", *argv], capture_output=True, text=True, timeout=300)


def test_cli_bad_input_exits_2_with_one_message_and_no_traceback(tmp_path):
    bad_json = tmp_path / "grid.json"
    bad_json.write_text('{"models": ["tiny-random"], "recipes": ["fp"],\n "tasks": [tinybench_general]}')
    bad_cell = tmp_path / "cells.json"
    bad_cell.write_text(json.dumps({**GRID_OK, "recipes": ["fp", "rtn:w16a16"]}))
    cases = [(("sweep", "show", str(tmp_path / "missing.jsonl")), r"store .*missing.jsonl does not exist"),
             (("sweep", "--grid", str(bad_json), "--store", str(tmp_path / "o.jsonl")),
              r"not valid JSON: .* line 2 column"),
             (("sweep", "--grid", str(bad_cell), "--store", str(tmp_path / "o.jsonl")),
              r"1 of 2 cells are invalid.*quantizes nothing"),
             (("quantize", "--model", "tiny-random", "--recipe", "gptq:w4a16g128:damp=0.01,damp=0.5",
               "--out", str(tmp_path / "q")), r"damp")]
    for argv, pattern in cases:
        done = _cli(*argv)
        assert done.returncode == 2, (argv, done.returncode, done.stderr[-2000:])
        assert "Traceback" not in done.stderr and re.search(pattern, done.stderr, re.S), (argv, done.stderr[-2000:])
    assert not (tmp_path / "o.jsonl").exists() and not (tmp_path / "q").exists()
