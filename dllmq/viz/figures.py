"""`dllmq figures`: redraw the activation-outlier figures of arXiv 2508.14896 (Figs. 1, 2, B1, B2) and the
dLLM-specific views, for the paper's models on a GPU or for any model (the tiny one on a CPU).

Each paper panel is the input of one Linear of one model for one calibration batch (paper.md Sec. 5.4).
For the paper's own models (`--model paper`) the layers are the paper's. For any other model the panel
keeps its role and maps the layer proportionally: round(layer * (n_layers - 1) / (n_paper_layers - 1)).
A panel is tagged "Massive" when the captured input passes the massive test (|x| >= 100 and >= 1000x
median |x|); the title also says when the paper tagged it.

    dllmq figures --model tiny --out figures/                  # CPU, seconds
    dllmq figures --model paper --figures 1 2 B1 B2            # GPU with ~20 GB; downloads 3 models
    dllmq figures --model tiny --figures compare --ar smollm2-135m
"""
from __future__ import annotations

import argparse
import gc
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

PAPER_MODELS = {  # paper name -> (hub id, number of blocks)
    "LLaDA-8B-Base": ("GSAI-ML/LLaDA-8B-Base", 32),
    "LLaDA-8B-Instruct": ("GSAI-ML/LLaDA-8B-Instruct", 32),
    "Dream-7B-Base": ("Dream-org/Dream-v0-Base-7B", 28),
}
PAPER_FIGURES = ("1", "2", "B1", "B2")
EXTRA_FIGURES = ("depth", "mask_ratio", "steps", "compare")


@dataclass(frozen=True)
class Panel:
    figure: str
    panel: str
    model: str  # key of PAPER_MODELS
    layer: int  # 0-based block index
    module: str  # the paper's module name
    role: str  # dllmq role
    paper_massive: bool
    note: str = ""


_P = Panel
PANELS = (
    _P("1", "a1", "LLaDA-8B-Base", 1, "Attn_q_proj", "q", False),
    _P("1", "b1", "LLaDA-8B-Base", 27, "Attn_out_proj", "o", False),
    _P("1", "c1", "LLaDA-8B-Base", 31, "FFN_ff_proj", "gate", False),
    _P("1", "d1", "LLaDA-8B-Base", 29, "FFN_ff_out", "down", True),
    _P("1", "a2", "LLaDA-8B-Instruct", 17, "Attn_q_proj", "q", False),
    _P("1", "b2", "LLaDA-8B-Instruct", 27, "Attn_out_proj", "o", False),
    _P("1", "c2", "LLaDA-8B-Instruct", 19, "FFN_ff_proj", "gate", False),
    _P("1", "d2", "LLaDA-8B-Instruct", 31, "FFN_ff_out", "down", True),
    _P("2", "a", "Dream-7B-Base", 1, "Attn_q_proj", "q", False),
    _P("2", "b", "Dream-7B-Base", 25, "Attn_o_proj", "o", False),
    _P("2", "c", "Dream-7B-Base", 27, "MLP_up_proj", "up", False, "large normal outliers"),
    _P("2", "d", "Dream-7B-Base", 4, "MLP_down_proj", "down", True),
    _P("B1", "a", "LLaDA-8B-Base", 11, "Attn_q_proj", "q", False),
    _P("B1", "b", "LLaDA-8B-Base", 26, "FFN_ff_out", "down", True),
    _P("B1", "c", "LLaDA-8B-Base", 9, "FFN_ff_proj", "gate", False, "tag unclear in the extracted text"),
    _P("B1", "d", "LLaDA-8B-Base", 31, "FFN_ff_out", "down", True),
    _P("B2", "a", "LLaDA-8B-Instruct", 9, "Attn_q_proj", "q", False),
    _P("B2", "b", "LLaDA-8B-Instruct", 31, "Attn_out_proj", "o", False),
    _P("B2", "c", "LLaDA-8B-Instruct", 11, "FFN_ff_proj", "gate", False),
    _P("B2", "d", "LLaDA-8B-Instruct", 25, "FFN_ff_out", "down", True),
)


def panels(figure: str) -> list:
    """The panels of one paper figure, in order."""
    if figure not in PAPER_FIGURES:
        raise ValueError(f"figure={figure!r} is unknown; allowed: {PAPER_FIGURES}")
    return [p for p in PANELS if p.figure == figure]


def map_layer(layer: int, n_paper: int, n_layers: int) -> int:
    """The paper's block index mapped proportionally onto a model with n_layers blocks."""
    return int(round(layer * (n_layers - 1) / max(n_paper - 1, 1)))


def is_massive(x: torch.Tensor, abs_min: float = 100.0, ratio: float = 1000.0) -> bool:
    """The massive test (Sun et al. 2024) on a captured tensor: max |x| >= abs_min and >= ratio x median |x|."""
    a = x.abs().float()
    return bool(a.max() >= abs_min and a.max() >= ratio * a.median())


def calibration_ids(tok, source: str, n_samples: int, seq_len: int, seed: int = 0) -> torch.Tensor:
    """(n, seq_len) calibration windows; hub sources fall back to the bundled text when offline."""
    from ..calibration import OfflineError, get_calibration
    try:
        return get_calibration(source, tok, n_samples=n_samples, seq_len=seq_len, seed=seed)
    except OfflineError as err:
        print(f"[figures] {err}; using the bundled English text instead")
        return get_calibration("text", tok, n_samples=n_samples, seq_len=seq_len, seed=seed)


def _label(model, name: str) -> str:
    return (name or getattr(model.config, "_name_or_path", "") or "model").rstrip("/").split("/")[-1]


def draw_paper_figure(figure: str, captures: dict, labels: dict, paper_layers: bool) -> "Figure":
    """Figure from {paper model: {(layer, role): Capture}}; labels: paper model -> shown model name."""
    from .plots import plot_paper_panels
    items = []
    for p in panels(figure):
        n_layers = captures[p.model]["n_layers"]
        layer = p.layer if paper_layers else map_layer(p.layer, PAPER_MODELS[p.model][1], n_layers)
        cap = captures[p.model][(layer, p.role)]
        x = cap.tokens(0)
        paper = f"{p.model} L{p.layer} {p.module}" + (" [Massive]" if p.paper_massive else "")
        title = f"({p.panel}) {paper}" if paper_layers else f"({p.panel}) {labels[p.model]} L{layer} {p.role}\npaper: {paper}"
        items.append((x, title, "Massive" if is_massive(x) else None))
    ncols = 4
    suffix = "" if paper_layers else f" - {', '.join(sorted(set(labels.values())))}"
    return plot_paper_panels(items, title=f"Figure {figure}{suffix}", ncols=ncols)


def paper_figures(figures, model=None, tok=None, name: str = "", source: str = "text", n_samples: int = 1,
                  seq_len: int = 256, device: Optional[str] = None) -> dict:
    """{figure id: Figure}. model=None loads the paper's models one at a time (GPU); otherwise every
    panel uses `model` with proportionally mapped layers."""
    from ..activations import capture_inputs
    from ..models import get_layout, load_model
    figures = list(figures)
    needed = sorted({p.model for f in figures for p in panels(f)})
    captures, labels = {}, {}
    if model is not None:
        n_layers = len(get_layout(model).blocks)
        ids = calibration_ids(tok, source, n_samples, seq_len)
        sites = sorted({(map_layer(p.layer, PAPER_MODELS[p.model][1], n_layers), p.role)
                        for f in figures for p in panels(f)})
        caps = capture_inputs(model, ids, sites, max_samples=1, max_tokens=seq_len, model_name=name)
        for m in needed:
            captures[m] = {**caps, "n_layers": n_layers}
            labels[m] = _label(model, name)
    else:
        for m in needed:
            hub_id, n_paper = PAPER_MODELS[m]
            model_m, tok_m = load_model(hub_id, device=device)
            ids = calibration_ids(tok_m, source, n_samples, seq_len)
            sites = sorted({(p.layer, p.role) for f in figures for p in panels(f) if p.model == m})
            captures[m] = {**capture_inputs(model_m, ids, sites, max_samples=1, max_tokens=seq_len, model_name=hub_id),
                           "n_layers": n_paper}
            labels[m] = m
            del model_m
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    return {f: draw_paper_figure(f, captures, labels, paper_layers=model is None) for f in figures}


def extra_figures(kinds, model, tok, name: str = "", source: str = "text", n_samples: int = 8, seq_len: int = 128,
                  ar: Optional[str] = None, device: Optional[str] = None) -> dict:
    """{kind: Figure} for kinds in ("depth", "mask_ratio", "steps", "compare")."""
    from ..activations import collect_activations, mask_ratio_sweep, steps_sweep
    from ..models import is_diffusion, load_model
    from . import plots
    ids = calibration_ids(tok, source, n_samples, seq_len)
    out = {}
    stats = None
    for kind in kinds:
        if kind not in EXTRA_FIGURES:
            raise ValueError(f"figure={kind!r} is unknown; allowed: {PAPER_FIGURES + EXTRA_FIGURES}")
        if kind in ("depth", "compare") and stats is None:
            stats = collect_activations(model, ids, progress=False, model_name=_label(model, name))
        if kind == "depth":
            out[kind] = plots.plot_depth(stats, "absmax")
        elif kind in ("mask_ratio", "steps") and not is_diffusion(model):
            raise ValueError(f"figure={kind!r} needs a masked-diffusion model; {_label(model, name)} is autoregressive")
        elif kind == "mask_ratio":
            out[kind] = plots.plot_mask_ratio(mask_ratio_sweep(model, ids, roles=("down",), progress=False), "down")
        elif kind == "steps":
            prompts = [tok.decode(row[: seq_len // 2]) for row in ids[:4].tolist()]
            steps, _ = steps_sweep(model, tok, prompts, steps=16, gen_length=32, block_length=32, roles=("down",))
            out[kind] = plots.plot_steps(steps, "down")
        elif kind == "compare":
            if ar is None:
                raise ValueError("figure 'compare' needs an autoregressive model: pass --ar NAME (e.g. smollm2-135m)")
            ar_model, ar_tok = load_model(ar, device=device)
            ar_stats = collect_activations(ar_model, calibration_ids(ar_tok, "text", n_samples, seq_len), progress=False,
                                           model_name=_label(ar_model, ar))
            out[kind] = plots.plot_compare(stats, ar_stats, "down", labels=(_label(model, name), _label(ar_model, ar)))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="dllmq figures", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny", help="'paper' (the paper's 8B models, GPU) or any load_model name")
    parser.add_argument("--out", default="figures", help="output folder for the PNGs")
    parser.add_argument("--figures", nargs="+", default=None,
                        help=f"which: {' '.join(PAPER_FIGURES + EXTRA_FIGURES)} (default: all that apply)")
    parser.add_argument("--ar", default=None, help="autoregressive model for 'compare' (e.g. smollm2-135m)")
    parser.add_argument("--calib", default=None, help="calibration source (default: wikitext2 for hub models, "
                        "the tiny corpus for tiny models, else the bundled text)")
    parser.add_argument("--n-samples", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--device", default=None)
    parser.add_argument("--dpi", type=int, default=72)
    args = parser.parse_args(argv)
    wanted = args.figures or list(PAPER_FIGURES) + ["depth", "mask_ratio", "steps"] + (["compare"] if args.ar else [])
    bad = [f for f in wanted if f not in PAPER_FIGURES + EXTRA_FIGURES]
    if bad:
        parser.error(f"unknown figure(s) {bad}; allowed: {PAPER_FIGURES + EXTRA_FIGURES}")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    paper = [f for f in wanted if f in PAPER_FIGURES]
    extra = [f for f in wanted if f in EXTRA_FIGURES]
    source = args.calib or ("wikitext2" if args.model == "paper" or "/" in args.model
                            else "tiny" if args.model.startswith("tiny") else "text")
    results = {}
    if args.model == "paper":
        if extra:
            parser.error(f"--model paper draws only the paper figures {PAPER_FIGURES}; run {extra} with one model")
        results.update(paper_figures(paper, source=source, n_samples=1, seq_len=args.seq_len, device=args.device))
        slug = "paper"
    else:
        from ..models import is_diffusion, load_model
        model, tok = load_model(args.model, device=args.device)
        slug = _label(model, args.model)
        if not args.figures and not is_diffusion(model):
            extra = [f for f in extra if f not in ("mask_ratio", "steps")]
        results.update(paper_figures(paper, model, tok, args.model, source, 1, args.seq_len))
        results.update(extra_figures(extra, model, tok, args.model, source, args.n_samples, args.seq_len,
                                     ar=args.ar, device=args.device))
    for kind, fig in results.items():
        stem = f"fig{kind}" if kind in PAPER_FIGURES else kind
        if kind == "compare":
            stem += f"_vs_{args.ar.rstrip('/').split('/')[-1]}"
        path = out_dir / f"{stem}_{slug}.png"
        fig.savefig(path, dpi=args.dpi)
        print(f"wrote {path}")
    return 0
