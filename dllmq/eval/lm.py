"""The lm-eval model class for diffusion LLMs (LLaDA, Dream), registered as "dllmq".

lm-eval asks a model three things; a dLLM answers them with its own machinery:
  loglikelihood          the Monte-Carlo masked ELBO (`dllmq.likelihood`, exact for one-token answers)
  loglikelihood_rolling  the same ELBO over windows of the text (perplexity tasks)
  generate_until         the family's denoising sampler (`dllmq.decoding.generate`), cut at the stop strings

Build it from model args (`--model dllmq --model_args pretrained=tiny,mc_samples=128,...`) or from an
in-memory (model, tokenizer), e.g. a fake-quantized model: `DllmqLM(model=qmodel, tokenizer=tok)`.

Decoding settings: a value given to the class (model args) wins; else the task's generation_kwargs
(`max_gen_toks` -> gen_length, and `steps`, `block_length`); else steps = block_length = gen_length
(one token per step, pure diffusion, as the LLaDA evaluation). `sampler_mode` is "guarded" (kit default:
never commit [MASK]) or "official" (token-identical to the official samplers; the paper presets pass it).
Dream takes `top_p` / `top_k` too (top_k=None: no filter, what Dream's harness passes).

Likelihood: `likelihood=official` (default) scores what each family's own harness scores -- LLaDA the bare
continuation; Dream BOS + context, then the continuation with a visible EOS after it -- and
`likelihood=bare` the continuation alone for either family (see docs/fidelity.md). The masks depend only
on (seed, request tokens): the same seed gives every model the same masks. Rolling (perplexity)
requests always use the bare definition (neither harness defines them). Chat models: use lm-eval's
`--apply_chat_template` (this class implements `apply_chat_template`). is_greedy is not computed (always False),
as in LLaDA's evaluation with is_check_greedy=False: no TinyBench or paper metric uses it.

Data parallel (`torchrun --nproc_per_node N -m dllmq eval ...`; docs/cluster.md): the class takes its rank,
world size and device from the launcher (RANK, WORLD_SIZE, LOCAL_RANK: `cuda:LOCAL_RANK` on GPUs), joins a
gloo group started from the launcher's MASTER_ADDR / MASTER_PORT, and gives lm-eval's evaluator what it calls
to split the documents over the processes and gather the per-document metrics on rank 0 (`all_gather`,
`gather_object`, `barrier`). A request's value depends only on the request -- likelihood masks come from
(seed, tokens) and requests of equal length share a forward, never padded -- so a sharded run merges to the
single process's metrics. Greedy generation pads prompts of different lengths in a batch (gen_batch_size):
that moves logits by rounding only (~1e-5), and batch size 1 (the paper presets) depends on nothing.
Sampled decoding (temperature > 0) draws from one generator per batch: sharded samples are as valid but not
the same draws. `served` lists the documents this process scored, per task.
"""
from __future__ import annotations

import warnings
from collections import defaultdict
from typing import Optional

import torch
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from tqdm.auto import tqdm

from ..decoding import REMASKING, check_sampler_mode, generate
from ..env import barrier, launch, process_group
from ..likelihood import appends_eos, check_definition, harness_pair, mc_loglikelihood
from ..models.layout import family_of

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}
DEFAULT_GEN_LENGTH = 256


def _positive_int(name: str, value, allow_none: bool = True) -> Optional[int]:
    if value is None and allow_none:
        return None
    try:
        ivalue = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} must be a positive integer") from None
    if ivalue < 1 or ivalue != float(value):
        raise ValueError(f"{name}={value!r} must be a positive integer")
    return ivalue


@register_model("dllmq")
class DllmqLM(LM):
    """lm-eval `LM` over a native LLaDA or Dream model (see the module docstring)."""

    def __init__(self, pretrained: str = "tiny", model=None, tokenizer=None, device: Optional[str] = None,
                 dtype: Optional[str] = None, mc_samples: int = 128, batch_size=32, gen_batch_size=None,
                 steps=None, gen_length=None, block_length=None, remasking: str = "low_confidence",
                 cfg_scale: float = 0.0, temperature: float = 0.0, alg: str = "entropy", seed: int = 0,
                 max_length=None, progress: bool = True, max_batch_size=None, likelihood: str = "official",
                 sampler_mode: str = "guarded", top_p=None, top_k=None):
        super().__init__()
        # 1. the model: in memory, or loaded by name (tiny, a hub id, a local dir)
        if (model is None) != (tokenizer is None):
            raise ValueError("pass both model= and tokenizer= (an in-memory model), or neither (pretrained=NAME)")
        self._rank, self._world_size, self._local_rank = launch()  # 0, 1, 0 in a plain process
        if model is None:
            from ..models import load_model
            if device is not None and str(device).startswith("cuda") and not torch.cuda.is_available():
                warnings.warn(f"device={device!r} but no GPU is visible (lm-eval's CLI default is cuda); using cpu")
                device = "cpu"
            if self._world_size > 1 and device is not None and str(device).startswith("cuda"):
                device = f"cuda:{self._local_rank}"  # one GPU per process (the CLI passes one device for all)
            if dtype is not None and str(dtype) not in DTYPES and str(dtype) != "auto":
                raise ValueError(f"dtype={dtype!r} is unknown; allowed: {sorted(DTYPES)} or 'auto'")
            torch_dtype = DTYPES.get(str(dtype)) if dtype is not None else None
            model, tokenizer = load_model(str(pretrained), device=device, dtype=torch_dtype)
        self.family = family_of(model)
        if self.family not in ("llada", "dream"):
            raise ValueError(f"DllmqLM needs a diffusion LM (llada or dream); got family {self.family!r}. "
                             "Evaluate autoregressive baselines with lm-eval's own 'hf' model.")
        self.model, self.tok = model.eval(), tokenizer
        self._device = next(model.parameters()).device
        self._served = defaultdict(set)  # task name -> ids of the documents this process scored
        process_group()  # every rank joins the group now, before lm-eval's first collective (None: one process)
        # 2. likelihood and decoding settings, checked once
        self.mc_samples = _positive_int("mc_samples", mc_samples, allow_none=False)
        if str(batch_size).startswith("auto"):
            batch_size = 32
        self.batch_size = _positive_int("batch_size", batch_size, allow_none=False)
        self.gen_batch_size = _positive_int("gen_batch_size", gen_batch_size) or self.batch_size
        self.steps = _positive_int("steps", steps)
        self.gen_length = _positive_int("gen_length", gen_length)
        self.block_length = _positive_int("block_length", block_length)
        if remasking not in REMASKING:
            raise ValueError(f"remasking={remasking!r} is unknown; allowed: {REMASKING}")
        self.remasking, self.alg = remasking, alg
        self.cfg_scale, self.temperature, self.seed = float(cfg_scale), float(temperature), int(seed)
        self.likelihood = check_definition(likelihood)
        self.sampler_mode = check_sampler_mode(sampler_mode)
        self.top_p = None if top_p in (None, "None", "none") else float(top_p)
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={top_p!r} must lie in (0, 1] or be None")
        self.top_k = None if top_k in (None, "None", "none") else _positive_int("top_k", top_k)
        limit = getattr(model.config, "max_sequence_length", None) or getattr(model.config, "max_position_embeddings", 4096)
        self.max_length = _positive_int("max_length", max_length) or int(limit)
        self.progress = bool(progress)

    # ---- data parallel: what lm-eval's evaluator calls to split requests and gather results --------
    # lm-eval 0.4.x reads `rank` / `world_size` (the base class's properties over _rank / _world_size) to
    # give each process every world_size-th document, `all_gather`s the per-rank request counts to pad the
    # shorter ranks with copies of their last request (equal forward counts), calls `barrier` after each
    # request type and `gather_object`s the per-document metrics to rank 0, which alone aggregates.
    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """The tensors of every process, concatenated along dim 0 in rank order (0-d tensors become rows)."""
        if self._world_size == 1:
            return tensor
        dist = process_group()
        local = tensor.detach().reshape(1) if tensor.dim() == 0 else tensor.detach()
        if dist.get_backend() == "gloo":
            local = local.cpu()
        parts = [torch.empty_like(local) for _ in range(self._world_size)]
        dist.all_gather(parts, local.contiguous())
        return torch.cat(parts).to(tensor.device)

    def gather_object(self, obj, dst: int = 0):
        """[obj of rank 0, obj of rank 1, ...] on rank `dst`; None on the other ranks."""
        if self._world_size == 1:
            return [obj]
        dist = process_group()
        result = [None] * self._world_size if self._rank == dst else None
        dist.gather_object(obj, result, dst=dst)
        return result

    def barrier(self) -> None:
        barrier()

    @property
    def served(self) -> dict:
        """task name -> sorted ids of the documents this process scored (about 1/world_size of each task)."""
        return {task: sorted(ids) for task, ids in self._served.items()}

    def _count(self, requests) -> None:
        for r in requests:
            self._served[getattr(r, "task_name", None) or "?"].add(getattr(r, "doc_id", None))

    # ------------------------------------------------------------------------------------------------
    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.tok, "name_or_path", "dllmq")).replace("/", "__")

    def apply_chat_template(self, chat_history: list, add_generation_prompt: bool = True) -> str:
        return self.tok.apply_chat_template(chat_history, tokenize=False, add_generation_prompt=add_generation_prompt)

    def chat_template(self, chat_template=False):
        return getattr(self.tok, "chat_template", None) if chat_template else None

    # ------------------------------------------------------------------------------------------------
    def _score(self, contexts: list, continuations: list, disable_tqdm: bool, definition: str) -> list:
        """[(estimate, stderr)] per request. Requests of equal length (context + continuation) are scored
        together and identical requests once: no row is ever padded, so a request's value does not depend on
        which requests share its forward -- the same in one process, on any rank of a sharded run, and for
        the copies lm-eval pads the shorter ranks with (masks come from (seed, tokens) alone)."""
        distinct = dict.fromkeys((tuple(c), tuple(y)) for c, y in zip(contexts, continuations))  # in order
        buckets = defaultdict(list)  # total length -> the distinct requests of that length
        for pair in distinct:
            buckets[len(pair[0]) + len(pair[1])].append(pair)
        scores = {}
        bar = tqdm(buckets.values(), desc="MC likelihood", unit="length", disable=disable_tqdm or not self.progress)
        for pairs in bar:
            values = mc_loglikelihood(self.model, [list(c) for c, _ in pairs], [list(y) for _, y in pairs],
                                      mc_samples=self.mc_samples, batch_size=self.batch_size, seed=self.seed,
                                      cfg_scale=self.cfg_scale, pad_id=self.tok.pad_token_id or 0,
                                      definition=definition, eos_id=self.tok.eos_token_id)
            scores.update(zip(pairs, values))
        return [scores[(tuple(c), tuple(y))] for c, y in zip(contexts, continuations)]

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list:
        """[(log p(continuation | context) by the MC masked ELBO, False)] per request (`likelihood` definition)."""
        self._count(requests)
        pairs = [harness_pair(self.tok, self.family, ctx, cont, self.likelihood) for ctx, cont in (r.args for r in requests)]
        room = self.max_length - int(appends_eos(self.family, self.likelihood))  # the appended EOS needs a slot
        ctxs = [c[-max(1, room - len(y)):] if len(c) + len(y) > room else c for c, y in pairs]  # keep the end
        if self.family == "dream":  # Dream's shifted logits need one token before the continuation
            lead = self.tok.bos_token_id if self.tok.bos_token_id is not None else self.tok.eos_token_id
            ctxs = [c if c else [lead] for c in ctxs]
        scores = self._score(ctxs, [y for _, y in pairs], disable_tqdm, self.likelihood)
        out = [(value, False) for value, _ in scores]
        for r, o in zip(requests, out):
            self.cache_hook.add_partial("loglikelihood", r.args, o)
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list:
        """Sum of the ELBO over disjoint windows of at most max_length tokens (each with maximal context)."""
        self._count(requests)
        prefix = self.tok.bos_token_id if self.tok.bos_token_id is not None else self.tok.eos_token_id
        ctxs, conts, owner = [], [], []
        for i, r in enumerate(requests):
            ids = self.tok(r.args[0], add_special_tokens=False)["input_ids"]
            windows = get_rolling_token_windows(ids, prefix, self.max_length, context_len=1)
            for j, (ctx, cont) in enumerate(map(make_disjoint_window, windows)):
                first_llada = j == 0 and self.family == "llada"  # LLaDA needs no prefix token: empty context
                ctxs.append([] if first_llada else list(ctx))
                conts.append(list(cont))
                owner.append(i)
        scores = self._score(ctxs, conts, disable_tqdm, "bare")
        totals = [0.0] * len(requests)
        for i, (value, _) in zip(owner, scores):
            totals[i] += value
        for r, t in zip(requests, totals):
            self.cache_hook.add_partial("loglikelihood_rolling", r.args, t)
        return totals

    # ------------------------------------------------------------------------------------------------
    def decoding_for(self, gen_kwargs: dict) -> dict:
        """The sampler settings of one request: model args, else the task's kwargs, else gen_length."""
        gen_length = self.gen_length or _positive_int("max_gen_toks", gen_kwargs.get("max_gen_toks")) or DEFAULT_GEN_LENGTH
        steps = self.steps or _positive_int("steps", gen_kwargs.get("steps")) or gen_length
        block = self.block_length or _positive_int("block_length", gen_kwargs.get("block_length")) or gen_length
        temperature = self.temperature if self.temperature else float(gen_kwargs.get("temperature", 0.0) or 0.0)
        settings = dict(steps=steps, gen_length=gen_length, temperature=temperature, cfg_scale=self.cfg_scale,
                        sampler_mode=self.sampler_mode)
        if self.family == "llada":
            settings.update(block_length=block, remasking=self.remasking)
        else:
            settings.update(alg=self.alg, top_p=self.top_p, top_k=self.top_k)
        return settings

    def _fit(self, context: str, gen_length: int) -> str:
        """Keep the last tokens of a prompt that would not fit the model's context with the answer."""
        ids = self.tok(context, add_special_tokens=False)["input_ids"]
        room = self.max_length - gen_length
        if room < 1:
            raise ValueError(f"gen_length={gen_length} leaves no room for the prompt (max_length={self.max_length})")
        return context if len(ids) <= room else self.tok.decode(ids[-room:])

    def generate_until(self, requests, disable_tqdm: bool = False) -> list:
        """Denoise an answer per request, batched by identical settings, cut at EOS and the stop strings."""
        self._count(requests)
        jobs = {}
        for i, r in enumerate(requests):
            context, gen_kwargs = r.args
            gen_kwargs = dict(gen_kwargs or {})
            until = gen_kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            key = tuple(sorted(self.decoding_for(gen_kwargs).items()))
            jobs.setdefault(key, []).append((i, context, until))
        out = [None] * len(requests)
        batches = [(key, items[lo:lo + self.gen_batch_size]) for key, items in jobs.items()
                   for lo in range(0, len(items), self.gen_batch_size)]
        bar = tqdm(batches, desc="generate_until", unit="batch", disable=disable_tqdm or not self.progress)
        for key, chunk in bar:
            settings = dict(key)
            chunk = sorted(chunk, key=lambda job: len(job[1]))  # similar lengths -> less padding
            prompts = [self._fit(ctx, settings["gen_length"]) for _, ctx, _ in chunk]
            gen = generate(self.model, self.tok, prompts, seed=self.seed, **settings)
            for (i, _, until), text in zip(chunk, gen.text):
                for stop in until:
                    if stop:
                        text = text.split(stop)[0]
                out[i] = text
                self.cache_hook.add_partial("generate_until", requests[i].args, text)
        return out
