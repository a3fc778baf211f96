"""Train the embedded tiny dLLM from scratch: `python -m dllmq.tiny.train --seed 0 --out DIR`.

A LLaDA-architecture model (native `LLaDAModelLM`) trained with the masked-diffusion loss
(`objective.py`) on the procedural corpus (`corpus.py`). Everything is seeded: the corpus stream,
the masks and the initial weights. `--steps` fixes the run; `--minutes` caps the wall time instead
(the learning-rate schedule then follows the elapsed fraction of the budget, so the run still ends
with a decayed rate, but the step count depends on the machine's speed).
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Iterator, Optional

import torch
from tqdm.auto import tqdm

from ..models.llada import LLaDAConfig, LLaDAModelLM
from .corpus import CorpusConfig, Row, rows
from .objective import masked_diffusion_loss
from .tokenizer import EOS_ID, MASK_ID, PAD_ID, build_tiny_tokenizer

MAX_LEN = 192


def model_size(d_model: int = 128, n_layers: int = 4) -> dict:
    """Width and depth -> LLaDA config fields: head dim 32, SwiGLU hidden size 3 * d_model."""
    heads = max(1, d_model // 32)
    return dict(d_model=d_model, n_heads=heads, n_kv_heads=heads, n_layers=n_layers, mlp_hidden_size=3 * d_model)


def tiny_llada_config(vocab_size: int, **overrides) -> LLaDAConfig:
    """The tiny model's architecture (LLaDA-8B's block design, scaled down)."""
    cfg = dict(model_size(), vocab_size=vocab_size, embedding_size=vocab_size, mask_token_id=MASK_ID,
               eos_token_id=EOS_ID, pad_token_id=PAD_ID, bos_token_id=None, max_sequence_length=512,
               rope_theta=10000.0, init_std=0.02)
    cfg.update(overrides)
    return LLaDAConfig(**cfg)


def encode_row(tok, row: Row) -> tuple:
    """(token ids, maskable flags): each part is tokenized on its own, as prompt and answer are at inference."""
    encode = lambda text: tok(text, add_special_tokens=False)["input_ids"] if text else []  # noqa: E731
    pieces = row.pieces or ((row.prompt, False), (row.answer, True))
    ids, maskable = [], []
    for text, can_mask in pieces:
        part = encode(text)
        ids += part
        maskable += [can_mask] * len(part)
    ids, maskable = (ids + [EOS_ID] * row.n_eos)[:MAX_LEN], (maskable + [True] * row.n_eos)[:MAX_LEN]
    if not any(maskable):  # a prompt longer than MAX_LEN: keep its last token as the one target
        maskable[-1] = True
    return ids, maskable


def batches(tok, seed: int, token_budget: int, pool: int = 512,
            config: Optional[CorpusConfig] = None) -> Iterator[tuple]:
    """Endless batches (input_ids, maskable, attention_mask) of rows of similar length (less padding)."""
    stream, rng = rows(seed, config), random.Random(seed + 1)
    while True:
        encoded = sorted((encode_row(tok, next(stream)) for _ in range(pool)), key=lambda e: len(e[0]))
        groups, current = [], []
        for ids, can_mask in encoded:
            if current and (len(current) + 1) * len(ids) > token_budget:
                groups.append(current)
                current = []
            current.append((ids, can_mask))
        groups.append(current)
        rng.shuffle(groups)
        for group in groups:
            T = max(len(ids) for ids, _ in group)
            input_ids = torch.full((len(group), T), PAD_ID, dtype=torch.long)
            maskable = torch.zeros((len(group), T), dtype=torch.bool)
            attention = torch.zeros((len(group), T), dtype=torch.long)
            for i, (ids, can_mask) in enumerate(group):  # right padding; pads are never attended nor masked
                input_ids[i, :len(ids)] = torch.tensor(ids)
                maskable[i, :len(ids)] = torch.tensor(can_mask)
                attention[i, :len(ids)] = 1
            yield input_ids, maskable, attention


def lr_at(progress: float, peak: float, warmup: float = 0.03, floor: float = 0.1) -> float:
    """Linear warm-up, then cosine decay to floor * peak; progress in [0, 1]."""
    if progress < warmup:
        return peak * progress / warmup
    x = min(1.0, (progress - warmup) / (1 - warmup))
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * x)))


def train(out: str, seed: int = 0, steps: int = 12000, minutes: Optional[float] = None, device: str = "cpu",
          lr: float = 3e-3, token_budget: int = 2048, threads: Optional[int] = 2, log_every: int = 50,
          checkpoint_every: int = 0, corpus_config: Optional[CorpusConfig] = None, **model_overrides) -> dict:
    """Train and save the model, tokenizer and a recipe.json into `out`; returns the recipe."""
    if threads and device == "cpu":
        torch.set_num_threads(threads)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "train_log.jsonl").unlink(missing_ok=True)
    # 1. tokenizer and model, seeded
    tok = build_tiny_tokenizer()
    torch.manual_seed(seed)
    model = LLaDAModelLM(tiny_llada_config(len(tok), **model_overrides)).to(device).train()
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    gen = torch.Generator(device=device).manual_seed(seed)
    corpus_config = corpus_config or CorpusConfig()
    data = batches(tok, seed, token_budget, config=corpus_config)
    # 2. the loop: masked-diffusion loss, clipped AdamW steps, a schedule over steps or wall time
    start, step, ema, log = time.time(), 0, None, []
    bar = tqdm(total=steps if minutes is None else int(minutes * 60), desc="train tiny dLLM",
               unit="step" if minutes is None else "s")
    while True:
        elapsed = time.time() - start
        progress = step / steps if minutes is None else max(step / steps, elapsed / (minutes * 60))
        if progress >= 1:
            break
        for group in opt.param_groups:
            group["lr"] = lr_at(progress, lr)
        input_ids, maskable, attention = (t.to(device) for t in next(data))
        loss = masked_diffusion_loss(model, input_ids, maskable, MASK_ID, attention, generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        bar.update(1 if minutes is None else int(time.time() - start) - bar.n)
        bar.set_postfix(loss=f"{ema:.3f}", lr=f"{lr_at(progress, lr):.1e}")
        if step % log_every == 0:
            log.append({"step": step, "loss": round(ema, 4), "elapsed_s": round(time.time() - start, 1)})
            with open(out_dir / "train_log.jsonl", "a") as f:
                f.write(json.dumps(log[-1]) + "\n")
        if checkpoint_every and step % checkpoint_every == 0:  # a loadable snapshot while training goes on
            model.save_pretrained(out_dir / "checkpoint")
            tok.save_pretrained(out_dir / "checkpoint")
    bar.close()
    # 3. save weights (safetensors), config, tokenizer and the recipe
    model.eval().to("cpu").save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    recipe = {"command": "python -m dllmq.tiny.train " + " ".join(sys.argv[1:]), "seed": seed, "steps": step,
              "max_steps": steps, "minutes": minutes, "device": device, "threads": threads, "lr": lr,
              "token_budget": token_budget, "params": n_params, "final_loss_ema": ema,
              "corpus": corpus_config.as_dict(),
              "wall_time_s": round(time.time() - start, 1), "torch": torch.__version__}
    (out_dir / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
    return recipe


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="dllmq train-tiny", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output directory (weights, config, tokenizer, recipe)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=12000, help="optimizer steps (fixes the schedule)")
    parser.add_argument("--minutes", type=float, default=None, help="wall-time budget (ends the run earlier)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--token-budget", type=int, default=2048, help="tokens per batch (incl. padding)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--d-model", type=int, default=128, help="width (heads of 32 dims, MLP 3x width)")
    parser.add_argument("--n-layers", type=int, default=4, help="number of transformer blocks")
    parser.add_argument("--checkpoint-every", type=int, default=0, help="save a snapshot every N steps (0: never)")
    parser.add_argument("--mix", default=None, help="SFT task weights, e.g. general=0.3,math=0.5,code=0.2")
    parser.add_argument("--pretrain-share", type=float, default=None, help="share of pretraining rows")
    parser.add_argument("--drill-share", type=float, default=None, help="share of arithmetic drill rows")
    parser.add_argument("--fact-share", type=float, default=None, help="share of fact rows (operands -> result)")
    parser.add_argument("--visible-work-share", type=float, default=None,
                        help="share of math SFT rows whose worked operands stay visible (only results masked)")
    args = parser.parse_args(argv)
    overrides = {}
    try:
        if args.mix:
            overrides["mix"] = {k: float(v) for k, v in (kv.split("=") for kv in args.mix.split(","))}
        for name in ("pretrain_share", "drill_share", "fact_share", "visible_work_share"):
            if getattr(args, name) is not None:
                overrides[name] = getattr(args, name)
        corpus_config = CorpusConfig(**overrides)
    except ValueError as exc:
        parser.error(f"corpus options: {exc} (--mix format: general=0.3,math=0.5,code=0.2)")
    if args.device not in ("cpu", "cuda") and not args.device.startswith("cuda:"):
        parser.error(f"--device={args.device!r} is not allowed; use cpu or cuda")
    recipe = train(args.out, seed=args.seed, steps=args.steps, minutes=args.minutes, device=args.device,
                   lr=args.lr, token_budget=args.token_budget, threads=args.threads,
                   checkpoint_every=args.checkpoint_every, corpus_config=corpus_config,
                   **model_size(args.d_model, args.n_layers))
    print(json.dumps(recipe, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
