"""Recipe: everything that defines one quantization run, as a frozen dataclass and a short string.

String form (round-trips through `Recipe.parse` / `str`):

    METHOD:SETTING[:OPTION,OPTION,...]

    SETTING   w{W}a{A}[g{G}][kv{K}]        w4a16g128, w3a16g128, w8a8, w4a4, w4a4kv4
              no g -> per-channel weights; a16 -> weight-only
    OPTION    sym | asym                   weight quantizer symmetric / asymmetric
              a_sym | a_asym               activation quantizer
              conv=signed|gptq             symmetric convention (see quantizer.py), default signed
              wclip=0.8|mse                weight clip ratio or MSE grid search
              aclip=0.9                    activation clip ratio
              q=8, kv=8                    attention matmul inputs: query bits, key/value bits
              calib=wikitext2|pileval|c4|text|tiny  n=128  len=2048  seed=0  mask=0.5|uniform
              NAME[=VALUE]                 a method knob (e.g. act_order, damp=0.05, alpha=0.85)

    "gptq:w4a16g128"                       the paper's GPTQ at W4A16 g128
    "gptq:w4a16g128:sym,conv=gptq"         ... as the released code runs it (AutoGPTQ sym=True)
    "gptq:w3a16g128:act_order,static_groups,calib=tiny,n=32,len=256"

Every option is given at most once, and never one that has no effect: a duplicate (`damp=0.01,damp=0.5`),
a conflict (`sym,asym`, `kv4` in the setting and `kv=8`), a recipe that quantizes nothing (`rtn:w16a16`),
attention-input bits on a weight-only method (`gptq:...:kv=4`), an activation option without quantized
activations (`gptq:...:aclip=0.9`) or a knob its method would ignore (`quarot:w4a4:kv_clip=0.9` without
`kv=`) is a clear error, as is a knob value outside its allowed set or range (`KNOB_CHOICES`, `KNOB_RANGES`).

Unspecified fields take the method's defaults, which are the paper's configuration of that method
(`presets.METHOD_DEFAULTS`; its knobs' defaults live in each method module's `KNOBS`), so
`str(Recipe.paper("gptq", "w4a16g128")) == "gptq:w4a16g128"`. `str()` prints only what differs, and
`Recipe.parse(str(r)) == r` for every recipe.

`Recipe.paper(method, setting, variant="paper", model=None, calib=None, **knobs)` returns the paper's
configuration (`presets.py`: what the variants "paper" and "code" change), fitted to `model` when one is
given (a module or a model name: `presets.fit`), with calibration fields and knobs overridable.
Seeds: `seed=` is the calibration sampling seed; the random rotations of QuaRot and DuQuant take the knob
`rotation_seed=`.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace
from functools import lru_cache
from typing import Any, Mapping, Optional, Union

from ..calibration import CalibSpec
from . import presets
from .quantizer import DEFAULT_SYM_CONVENTION, SYM_CONVENTIONS, ActQuantizer, QuantSpec, check_bits, check_clip
from .registry import METHODS, WEIGHT_ACTIVATION_METHODS, WEIGHT_ONLY_METHODS, check_method, method_knobs

_SETTING_RE = re.compile(r"^w(\d+)a(\d+)(?:g(\d+))?(?:kv(\d+))?$")
_CALIB_KEYS = {"calib": "source", "n": "n_samples", "len": "seq_len", "seed": "seed", "mask": "mask_ratio"}


def _as_value(text: str, like: Any, name: str) -> Any:
    """Parse an option value to the type of `like` (its default)."""
    if isinstance(like, bool):
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"knob {name}={text!r} must be a bool (true/false)")
    try:
        if isinstance(like, int):
            return int(text)
        if isinstance(like, float):
            return float(text)
    except ValueError:
        raise ValueError(f"knob {name}={text!r} must be a {type(like).__name__}") from None
    return text


def _coerce_knob(name: str, value: Any, like: Any) -> Any:
    """Check/convert a knob value to the type of its default `like` (None: any JSON scalar)."""
    if isinstance(value, str) and like is not None and not isinstance(like, str):
        return _as_value(value, like, name)
    if like is None:
        return value
    if isinstance(like, bool):
        if not isinstance(value, bool):
            raise TypeError(f"knob {name}={value!r} must be a bool")
        return value
    if isinstance(like, str):
        if not isinstance(value, str):
            raise TypeError(f"knob {name}={value!r} must be a str (e.g. {name}={like})")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"knob {name}={value!r} must be a {type(like).__name__}")
    if isinstance(like, int):
        if float(value) != int(value):
            raise ValueError(f"knob {name}={value!r} must be an int")
        return int(value)
    return float(value)


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


# -- what a setting needs to have an effect, and the allowed values of the method knobs --------------


def _weights_quantized(r) -> bool:
    return r.w_bits < 16


def _act_options_used(r) -> bool:
    """a_sym / a_clip reach a quantizer: per-token activations, queries, or K/V (QuaRot's K/V have their own knobs)."""
    return r.a_bits < 16 or r.q_bits < 16 or (r.kv_bits < 16 and r.method != "quarot")


def _convention_used(r) -> bool:
    return (r.w_bits < 16 and r.w_sym) or (r.a_bits < 16 and r.a_sym)


_WEIGHTS = "quantized weights (w_bits < 16)"
_ACTS = "quantized activations or attention inputs (a_bits < 16, q=..., kv=...)"
# field -> (predicate on the recipe, what it needs)
FIELD_NEEDS = {
    "group_size": (_weights_quantized, _WEIGHTS),
    "w_sym": (_weights_quantized, _WEIGHTS),
    "w_clip": (_weights_quantized, _WEIGHTS),
    "a_sym": (_act_options_used, _ACTS),
    "a_clip": (_act_options_used, _ACTS),
    "sym_convention": (_convention_used, "a symmetric weight or activation quantizer (sym, a_sym)"),
}
# method -> knob -> (predicate on the recipe, what it needs); a knob set away from its default, or written in a
# recipe string, where its predicate is false would be silently ignored by the method
KNOB_NEEDS = {
    "gptq": {"static_groups": (lambda r: r.group_size is not None, "a group size (e.g. w4a16g128)")},
    "awq": {**{k: (lambda r: bool(r.knob("scale")), "the scale search (scale=true)") for k in ("n_grid", "loss")},
            **{k: (lambda r: bool(r.knob("clip")), "the clip search (clip=true)")
               for k in ("clip_grid", "max_shrink", "clip_tokens", "oc_batch")}},
    "quarot": {"weights": (_weights_quantized, _WEIGHTS),
               "damp": (lambda r: r.w_bits < 16 and r.knob("weights") == "gptq", "GPTQ weights (weights=gptq)"),
               "kv_sym": (lambda r: r.kv_bits < 16, "quantized keys/values (kv=...)"),
               "kv_clip": (lambda r: r.kv_bits < 16, "quantized keys/values (kv=...)")},
    "duquant": {"alpha": (lambda r: r.knob("smoothing") != "none", "smoothing (smoothing other than 'none')")},
}


def _fallbacks() -> tuple:
    from .hadamard import FALLBACKS
    return tuple("none" if f is None else f for f in FALLBACKS)


# method -> knob -> allowed values: a tuple, the name of a collection in the method's module (its keys for a
# dict), or a function returning them (one owner for each set of choices)
KNOB_CHOICES = {
    "awq": {"loss": "LOSSES"},
    "smoothquant": {"smoothing": "RULES"},
    "quarot": {"weights": ("gptq", "rtn"), "rotation": "ROTATIONS", "hadamard_fallback": _fallbacks},
    "duquant": {"greedy_index": "GREEDY_INDEX", "rotation_base": "ROTATION_BASES", "calib_input": "CALIB_INPUTS",
                "smoothing": "SMOOTHINGS", "permutation_times": (0, 1)},
}
# method -> knob -> (low, high, low_open, high_open); None = unbounded
_POSITIVE, _AT_LEAST_1, _NON_NEGATIVE, _UNIT = (0, None, True, False), (1, None, False, False), \
    (0, None, False, False), (0, 1, False, False)
KNOB_RANGES = {
    "gptq": {"damp": _POSITIVE, "damp_step": _POSITIVE, "block_size": _AT_LEAST_1},
    "awq": {"n_grid": _AT_LEAST_1, "clip_grid": _AT_LEAST_1, "max_shrink": (0, 1, False, True),
            "clip_tokens": _AT_LEAST_1, "oc_batch": _AT_LEAST_1},
    "smoothquant": {"alpha": _UNIT},
    "quarot": {"damp": _POSITIVE, "kv_clip": (0, 1, True, False), "rotation_seed": _NON_NEGATIVE},
    "duquant": {"alpha": _UNIT, "block_size": _AT_LEAST_1, "rotation_steps": _NON_NEGATIVE,
                "max_calib_tokens": _NON_NEGATIVE, "rotation_seed": _NON_NEGATIVE},
}


def knob_choices(method: str, knob: str) -> Optional[tuple]:
    """The allowed values of a method knob (None: any value of its type)."""
    spec = KNOB_CHOICES.get(method, {}).get(knob)
    if spec is None:
        return None
    if callable(spec):
        return tuple(spec())
    if isinstance(spec, str):
        import importlib
        found = getattr(importlib.import_module(METHODS[method]), spec)
        return tuple(found)  # a dict gives its keys
    return tuple(spec)


def _interval(lo, hi, lo_open, hi_open) -> str:
    if hi is None:
        return f"{'>' if lo_open else '>='} {lo}"
    return f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"


def _check_knob_value(method: str, name: str, value: Any) -> None:
    choices = knob_choices(method, name)
    if choices is not None and value not in choices:
        raise ValueError(f"knob {name}={value!r} is unknown for method={method!r}; allowed: {list(choices)}")
    bounds = KNOB_RANGES.get(method, {}).get(name)
    if bounds is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi, lo_open, hi_open = bounds
        low_ok = value > lo if lo_open else value >= lo
        high_ok = hi is None or (value < hi if hi_open else value <= hi)
        if not (low_ok and high_ok):
            raise ValueError(f"knob {name}={value!r} is out of range for method={method!r}; "
                             f"allowed: {_interval(*bounds)}")


def _field_option(name: str, value: Any) -> str:
    """How a Recipe field is written in a recipe string (for messages)."""
    return {"group_size": f"g{value}", "w_sym": "sym" if value else "asym", "a_sym": "a_sym" if value else "a_asym",
            "w_clip": f"wclip={_fmt(value)}", "a_clip": f"aclip={_fmt(value)}",
            "sym_convention": f"conv={value}"}[name]


_CALIB_FIELDS = tuple(f.name for f in fields(CalibSpec))


def _calib_with(spec: CalibSpec, changes: Mapping, where: str) -> CalibSpec:
    """`spec` with CalibSpec fields changed; an unknown field is an error naming the allowed ones."""
    if not isinstance(changes, Mapping):
        raise TypeError(f"{where}={changes!r} must be a CalibSpec or a mapping of its fields {list(_CALIB_FIELDS)}")
    unknown = sorted(set(changes) - set(_CALIB_FIELDS))
    if unknown:
        raise ValueError(f"{where} key {unknown[0]!r} is unknown; allowed: {list(_CALIB_FIELDS)}")
    return replace(spec, **changes)


@lru_cache(maxsize=None)
def _method_knob_defaults(method: str) -> tuple:
    return tuple(method_knobs(method).items())


def _defaults(method: str) -> dict:
    """The value every field takes when a recipe of `method` does not set it (what `str()` leaves out)."""
    base = presets.method_defaults(method)
    return {"w_sym": base["w_sym"], "a_sym": base["a_sym"], "w_clip": base["w_clip"], "a_clip": base["a_clip"],
            "calib": base["calib"], "group_size": None, "sym_convention": DEFAULT_SYM_CONVENTION,
            "knobs": dict(_method_knob_defaults(method))}


@dataclass(frozen=True)
class Recipe:
    """One quantization configuration. Build with `Recipe.parse(...)`, `Recipe.paper(...)` or directly.

    w_bits/a_bits: weight/activation bits (a_bits=16: weight-only; w_bits=16: FP weights).
    group_size: None = per output channel, else contiguous groups of input columns.
    w_clip: ratio in (0, 1] or "mse"; a_clip: ratio. q_bits/kv_bits: attention matmul inputs (16 = off).
    knobs: method options (defaults: the method module's KNOBS); calib: the calibration set."""

    method: str
    w_bits: int = 4
    a_bits: int = 16
    group_size: Optional[int] = None
    w_sym: Optional[bool] = None  # None -> method default
    a_sym: Optional[bool] = None
    w_clip: Union[None, float, str] = None
    a_clip: Optional[float] = None
    q_bits: int = 16
    kv_bits: int = 16
    sym_convention: str = DEFAULT_SYM_CONVENTION
    knobs: Any = field(default_factory=dict)
    calib: Optional[CalibSpec] = None

    def __post_init__(self):
        check_method(self.method)
        base = presets.method_defaults(self.method)
        for name in ("w_sym", "a_sym", "w_clip", "a_clip", "calib"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, base[name])
        check_bits(self.w_bits, "w_bits", allow_16=True)
        check_bits(self.a_bits, "a_bits", allow_16=True)
        check_bits(self.q_bits, "q_bits", allow_16=True)
        check_bits(self.kv_bits, "kv_bits", allow_16=True)
        if self.group_size is not None and (isinstance(self.group_size, bool) or not isinstance(self.group_size, int)
                                            or self.group_size < 1):
            raise ValueError(f"group_size={self.group_size!r} must be None (per-channel) or a positive int")
        for name in ("w_sym", "a_sym"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name}={getattr(self, name)!r} must be a bool")
        object.__setattr__(self, "w_clip", check_clip(self.w_clip, "w_clip"))
        if self.a_clip == "mse":
            raise ValueError("a_clip='mse' is not supported; allowed: a float in (0, 1]")
        object.__setattr__(self, "a_clip", check_clip(self.a_clip, "a_clip"))
        if self.sym_convention not in SYM_CONVENTIONS:
            raise ValueError(f"sym_convention={self.sym_convention!r} is unknown; allowed: {SYM_CONVENTIONS}")
        if not isinstance(self.calib, CalibSpec):
            raise TypeError(f"calib={self.calib!r} must be a CalibSpec")
        if self.method in WEIGHT_ONLY_METHODS and self.a_bits != 16:
            raise ValueError(f"method={self.method!r} is weight-only: a_bits must be 16, got a_bits={self.a_bits} "
                             "(weight-activation methods: rtn, smoothquant, quarot, duquant)")
        if self.method in WEIGHT_ACTIVATION_METHODS and self.a_bits == 16:
            raise ValueError(f"method={self.method!r} quantizes activations: a_bits must be < 16, got 16 "
                             "(weight-only methods: rtn, gptq, awq)")
        if self.w_bits == 16 and self.method in ("gptq", "awq"):
            raise ValueError(f"w_bits=16 leaves weights unquantized, but method={self.method!r} quantizes weights")
        if self.method in WEIGHT_ONLY_METHODS:
            for name in ("q_bits", "kv_bits"):
                if getattr(self, name) != 16:
                    raise ValueError(f"{name}={getattr(self, name)}: method={self.method!r} is weight-only and never "
                                     "quantizes attention inputs, so it would be ignored; attention inputs are "
                                     "quantized by rtn, smoothquant, quarot, duquant")
        if self.w_bits == 16 and self.a_bits == 16 and self.q_bits == 16 and self.kv_bits == 16:
            raise ValueError(f"recipe {self.method}:{self.setting} quantizes nothing: w_bits=16, a_bits=16, q_bits=16 "
                             "and kv_bits=16 leave every weight, activation and attention input in full precision; "
                             "quantize at least one (e.g. w4a16, w8a8, kv=8)")
        object.__setattr__(self, "knobs", self._check_knobs(self.knobs))
        base = _defaults(self.method)
        changed = {name: _field_option(name, getattr(self, name)) for name in FIELD_NEEDS
                   if getattr(self, name) != base[name]}
        self._check_effects(changed, {name for name, value in self.knobs if value != base["knobs"][name]})

    def _check_effects(self, given_fields: Mapping, given_knobs) -> None:
        """Every field in `given_fields` (name -> how it was written) and knob in `given_knobs` must change what
        the method does; one it would ignore is an error (nothing is accepted and then silently dropped)."""
        where = f"{self.method}:{self.setting}"
        for name, option in given_fields.items():
            used, needs = FIELD_NEEDS[name]
            if not used(self):
                raise ValueError(f"option {option} ({name}={getattr(self, name)!r}) has no effect in recipe {where}: "
                                 f"it needs {needs}; remove it")
        rules = KNOB_NEEDS.get(self.method, {})
        for name in given_knobs:
            if name in rules and not rules[name][0](self):
                raise ValueError(f"knob {name}={_fmt(self.knob(name))} has no effect in recipe {where} "
                                 f"(method={self.method!r}): it needs {rules[name][1]}; remove it")

    def _check_knobs(self, given) -> tuple:
        if isinstance(given, tuple):
            given = dict(given)
        if not isinstance(given, Mapping):
            raise TypeError(f"knobs={given!r} must be a mapping name -> value")
        defaults = method_knobs(self.method)
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            hint = " (the calibration seed is `seed=` in a recipe string, calib=CalibSpec(seed=...) here)" \
                if "seed" in unknown else ""
            raise ValueError(f"knob {unknown[0]!r} is unknown for method={self.method!r}; "
                             f"allowed: {sorted(defaults)}{hint}")
        knobs = tuple((name, _coerce_knob(name, given[name], like) if name in given else like)
                      for name, like in defaults.items())
        for name, value in knobs:
            _check_knob_value(self.method, name, value)
        return knobs

    # -- access -------------------------------------------------------------------------------
    def knob(self, name: str, default: Any = None) -> Any:
        """Value of a method knob (recipe value, else `default`)."""
        return dict(self.knobs).get(name, default)

    @property
    def weight_only(self) -> bool:
        return self.a_bits == 16

    def weight_spec(self, include_zero: bool = False) -> Optional[QuantSpec]:
        """The weight quantizer (None when w_bits == 16)."""
        if self.w_bits == 16:
            return None
        gran = "channel" if self.group_size is None else "group"
        return QuantSpec(bits=self.w_bits, sym=self.w_sym, granularity=gran, group_size=self.group_size,
                         clip_ratio=self.w_clip, sym_convention=self.sym_convention, include_zero=include_zero)

    def act_quantizer(self) -> Optional[ActQuantizer]:
        """A fresh per-token activation quantizer (None when a_bits == 16)."""
        if self.a_bits == 16:
            return None
        return ActQuantizer(self.a_bits, sym=self.a_sym, clip_ratio=self.a_clip, sym_convention=self.sym_convention)

    def with_(self, **changes) -> "Recipe":
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    # -- string form --------------------------------------------------------------------------
    @property
    def setting(self) -> str:
        s = f"w{self.w_bits}a{self.a_bits}"
        return s + ("" if self.group_size is None else f"g{self.group_size}")

    def __str__(self) -> str:
        base = _defaults(self.method)
        opts = []
        if self.w_sym != base["w_sym"]:
            opts.append("sym" if self.w_sym else "asym")
        if self.a_sym != base["a_sym"]:
            opts.append("a_sym" if self.a_sym else "a_asym")
        if self.sym_convention != base["sym_convention"]:
            opts.append(f"conv={self.sym_convention}")
        if self.w_clip != base["w_clip"]:
            opts.append(f"wclip={_fmt(self.w_clip)}")
        if self.a_clip != base["a_clip"]:
            opts.append(f"aclip={_fmt(self.a_clip)}")
        if self.q_bits != 16:
            opts.append(f"q={self.q_bits}")
        if self.kv_bits != 16:
            opts.append(f"kv={self.kv_bits}")
        defaults = base["knobs"]
        for name, value in self.knobs:
            if name not in defaults or defaults[name] != value:
                opts.append(name if value is True else f"{name}={_fmt(value)}")
        for key, attr in _CALIB_KEYS.items():
            value = getattr(self.calib, attr)
            if value != getattr(base["calib"], attr):
                opts.append(f"{key}={_fmt(value)}")
        return f"{self.method}:{self.setting}" + (":" + ",".join(opts) if opts else "")

    def __repr__(self) -> str:
        return f"Recipe({str(self)!r})"

    @classmethod
    def parse(cls, text: Union[str, "Recipe"]) -> "Recipe":
        """Parse 'method:setting[:options]' (see the module docstring); a Recipe passes through."""
        if isinstance(text, Recipe):
            return text
        if not isinstance(text, str):
            raise TypeError(f"recipe={text!r} must be a str like 'gptq:w4a16g128' or a Recipe")
        parts = text.strip().split(":")
        if len(parts) < 2 or len(parts) > 3:
            raise ValueError(f"recipe={text!r} must look like 'method:setting[:options]', e.g. 'gptq:w4a16g128'")
        method = check_method(parts[0].strip().lower())
        match = _SETTING_RE.match(parts[1].strip().lower())
        if not match:
            raise ValueError(f"setting {parts[1]!r} in recipe={text!r} must look like w4a16g128, w8a8 or w4a4kv4")
        w, a, g, kv = match.groups()
        kw: dict = dict(w_bits=int(w), a_bits=int(a), group_size=None if g is None else int(g))
        seen: dict = {}  # option key -> how it was first written (duplicates and conflicts are errors)
        explicit: dict = {} if g is None else {"group_size": f"g{g}"}  # fields written -> how

        def once(key: str, written: str) -> None:
            if key in seen:
                first = seen[key]
                if first != written and key in ("sym", "a_sym"):
                    raise ValueError(f"options {first!r} and {written!r} conflict in recipe={text!r}; give one of them")
                raise ValueError(f"option {key!r} is given twice in recipe={text!r} ({first!r} and {written!r}); "
                                 "give each option once")
            seen[key] = written

        if kv is not None:
            kw["kv_bits"] = int(kv)
            once("kv", f"kv{kv} in the setting")
        knobs, calib = {}, {}
        options = [o.strip() for o in parts[2].split(",")] if len(parts) == 3 else []
        for opt in options:
            if not opt:
                raise ValueError(f"empty option in recipe={text!r}")
            key, eq, value = opt.partition("=")
            key = key.strip()
            value = value.strip()
            if key in ("sym", "asym", "a_sym", "a_asym"):
                if eq:
                    pair = "'sym' or 'asym'" if key in ("sym", "asym") else "'a_sym' or 'a_asym'"
                    raise ValueError(f"option {key!r} takes no value in recipe={text!r}: write {pair}")
                field_name = "w_sym" if key in ("sym", "asym") else "a_sym"
                once("sym" if field_name == "w_sym" else "a_sym", key)
                kw[field_name] = key in ("sym", "a_sym")
                explicit[field_name] = key
                continue
            valued = ("conv", "wclip", "aclip", "q", "kv", *_CALIB_KEYS)
            if key in valued and not (eq and value):
                example = {"conv": "conv=gptq", "wclip": "wclip=0.9", "aclip": "aclip=0.9", "q": "q=8", "kv": "kv=8",
                           "calib": "calib=tiny", "n": "n=128", "len": "len=2048", "seed": "seed=0",
                           "mask": "mask=0.5"}[key]
                raise ValueError(f"option {key!r} needs a value in recipe={text!r}, e.g. {example}")
            once(key, opt)
            if key == "conv":
                kw["sym_convention"] = value
                explicit["sym_convention"] = opt
            elif key == "wclip":
                kw["w_clip"] = value if value == "mse" else _as_value(value, 1.0, "wclip")
                explicit["w_clip"] = opt
            elif key == "aclip":
                kw["a_clip"] = value if value == "mse" else _as_value(value, 1.0, "aclip")
                explicit["a_clip"] = opt
            elif key in ("q", "kv"):
                kw[f"{key}_bits"] = _as_value(value, 1, key)
            elif key in _CALIB_KEYS:
                attr = _CALIB_KEYS[key]
                if attr == "source":
                    calib[attr] = value
                elif attr == "mask_ratio":
                    calib[attr] = value if value == "uniform" else _as_value(value, 1.0, "mask")
                else:
                    calib[attr] = _as_value(value, 1, key)
            else:
                knobs[key] = value if eq else True
        recipe = cls(method, **kw)
        if calib:
            recipe = replace(recipe, calib=replace(recipe.calib, **calib))
        if knobs:
            recipe = replace(recipe, knobs={**dict(recipe.knobs), **knobs})
        recipe._check_effects(explicit, set(knobs))  # also options written with their default value
        return recipe

    # -- paper presets ------------------------------------------------------------------------
    @classmethod
    def paper(cls, method: str, setting: str, variant: str = "paper", *, model=None,
              calib: Union[None, CalibSpec, Mapping] = None, **knobs) -> "Recipe":
        """The paper's configuration of `method` at `setting` (presets.py), fitted to `model` when given.

        calib: a CalibSpec, or a mapping of CalibSpec fields to change (e.g. {"mask_ratio": 0.5});
        knobs: method knobs that override the preset's."""
        check_method(method)
        presets.check_paper_setting(method, setting, variant)
        recipe = cls.parse(f"{method}:{setting}")
        recipe = replace(recipe, **presets.paper_changes(recipe, variant))
        if model is not None:
            recipe = presets.fit(recipe, model)
        if calib is not None:
            recipe = replace(recipe, calib=calib if isinstance(calib, CalibSpec) else _calib_with(recipe.calib, calib,
                                                                                               "calib"))
        if knobs:
            recipe = replace(recipe, knobs={**dict(recipe.knobs), **knobs})
        return recipe

    # -- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["knobs"] = dict(self.knobs)
        d["calib"] = asdict(self.calib)
        d["string"] = str(self)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        """Inverse of `to_dict` (e.g. a recipe stored in JSON); unknown or missing keys are clear errors."""
        if not isinstance(d, Mapping):
            raise TypeError(f"recipe dict={d!r} must be a dict as Recipe.to_dict() writes it "
                            "(for a recipe string use Recipe.parse)")
        allowed = [f.name for f in fields(cls)] + ["string"]
        unknown = sorted(set(d) - set(allowed))
        if unknown:
            raise ValueError(f"recipe dict has unknown key {unknown[0]!r}; allowed: {allowed}")
        if "method" not in d:
            raise ValueError(f"recipe dict lacks 'method'; it needs method (one of {sorted(METHODS)}) and may give "
                             f"{allowed[1:]}")
        kw = {k: v for k, v in d.items() if k != "string"}
        if kw.get("calib") is not None and not isinstance(kw["calib"], CalibSpec):
            kw["calib"] = _calib_with(CalibSpec(), kw["calib"], "recipe dict calib")
        recipe = cls(**kw)
        if "string" in d and d["string"] != str(recipe):
            raise ValueError(f"recipe dict is inconsistent: string={d['string']!r} but its fields give {str(recipe)!r}")
        return recipe


def all_paper_recipes(variant: str = "paper") -> list:
    """Every (method, setting) preset the paper reports, as Recipes."""
    return [Recipe.paper(m, s, variant) for m in METHODS for s in presets.PAPER_METHOD_SETTINGS[m] if m != "rtn"]
