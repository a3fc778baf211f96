"""Greedy samples of `sampler_mode="official"` are token-identical to the official samplers, restated below
in our own words: LLaDA's `generate()` (ML-GSAI/LLaDA `generate.py`, the version with attention masks and
the EOS/EoT switches) and Dream's `diffusion_generate` (`generation_utils.py` of Dream-org/Dream-v0-*-7B),
on random-weight models -- where the two rules the kit's default "guarded" mode changes ([MASK] can be
predicted; the [MASK] probability takes part in every softmax) actually fire.
"""
import pytest
import torch
import torch.nn.functional as F

from dllmq.decoding import SAMPLER_MODES, dream_sample, generate, llada_sample
from dllmq.models import build_random_model

NEG_INF = float("-inf")


# ------------------------------------------------------------------------------------------------------
# LLaDA generate() as the official code runs it (temperature 0; the random draws come from torch's global RNG)


def official_llada(model, prompt, attention_mask, *, steps, gen_length, block_length, cfg_scale=0.0,
                   remasking="low_confidence", mask_id, logits_eos_inf=False, confidence_eos_eot_inf=False,
                   eos_id=None, eot_id=None):
    B, Lp = prompt.shape
    x = torch.full((B, Lp + gen_length), mask_id, dtype=torch.long)
    x[:, :Lp] = prompt
    if attention_mask is not None:
        attention_mask = torch.cat([attention_mask, torch.ones(B, gen_length, dtype=attention_mask.dtype)], 1)
    is_prompt = x != mask_id
    n_blocks = gen_length // block_length
    per_block = steps // n_blocks
    for b in range(n_blocks):
        lo, hi = Lp + b * block_length, Lp + (b + 1) * block_length
        masked_in_block = (x[:, lo:hi] == mask_id).sum(1)
        schedule = [[int(c) // per_block + (1 if i < int(c) % per_block else 0) for i in range(per_block)]
                    for c in masked_in_block]
        for i in range(per_block):
            still_masked = x == mask_id
            if cfg_scale > 0:
                unconditional = x.clone()
                unconditional[is_prompt] = mask_id
                both_masks = None if attention_mask is None else torch.cat([attention_mask, attention_mask])
                out = model(torch.cat([x, unconditional]), attention_mask=both_masks).logits
                cond, uncond = out.chunk(2)
                logits = uncond + (cfg_scale + 1) * (cond - uncond)
            else:
                logits = model(x, attention_mask=attention_mask).logits
            if logits_eos_inf:
                logits[:, :, eos_id] = NEG_INF
            prediction = logits.argmax(-1)  # temperature 0: no Gumbel noise, the logits themselves
            if confidence_eos_eot_inf:  # at temperature 0 the "noisy" logits are the logits: both lose
                logits[:, :, eos_id] = NEG_INF
                logits[:, :, eot_id] = NEG_INF
            if remasking == "low_confidence":
                score = F.softmax(logits, dim=-1).gather(-1, prediction[..., None]).squeeze(-1)
            else:
                score = torch.rand((B, x.shape[1]))
            score[:, hi:] = NEG_INF
            prediction = torch.where(still_masked, prediction, x)
            score = torch.where(still_masked, score, torch.full_like(score, NEG_INF))
            commit = torch.zeros_like(x, dtype=torch.bool)
            for r in range(B):
                commit[r, torch.topk(score[r], k=schedule[r][i]).indices] = True
            x[commit] = prediction[commit]
    return x


# ------------------------------------------------------------------------------------------------------
# Dream diffusion_generate() / _sample() as the official code runs it


def _nucleus(logits, top_p):
    ordered, order = torch.sort(logits, descending=True)
    drop = torch.cumsum(F.softmax(ordered, dim=-1), dim=-1) > top_p
    drop[..., 1:] = drop[..., :-1].clone()
    drop[..., 0] = False
    remove = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, order, drop)
    return logits.masked_fill(remove, torch.finfo(logits.dtype).min)


def _keep_top_k(logits, top_k):
    kth = torch.topk(logits, min(top_k, logits.shape[-1]))[0][..., -1, None]
    return logits.masked_fill(logits < kth, torch.finfo(logits.dtype).min)


def _dream_choose(logits, top_p, top_k, alg):
    """Dream's sample_tokens at temperature 0: argmax, confidence per alg."""
    if top_p is not None and top_p < 1:
        logits = _nucleus(logits, top_p)
    if top_k is not None:
        logits = _keep_top_k(logits, top_k)
    probs = torch.softmax(logits, dim=-1)
    confidence, token = probs.max(dim=-1)
    if alg == "topk_margin":
        ordered, _ = torch.sort(probs, dim=-1, descending=True)
        confidence = ordered[:, 0] - ordered[:, 1]
    elif alg == "entropy":
        confidence = torch.sum(probs * torch.log(probs + 1e-10), dim=-1)
    return confidence, token


def official_dream(model, prompt, attention_mask, *, steps, max_new_tokens, alg, mask_id, top_p=None, top_k=None,
                   alg_temp=None, eps=1e-3):
    B, Lp = prompt.shape
    x = F.pad(prompt, (0, max_new_tokens), value=mask_id)
    if attention_mask is not None and bool((attention_mask == 0).any()):
        attention_mask = F.pad(attention_mask, (0, max_new_tokens), value=1)
        positions = attention_mask.long().cumsum(-1) - 1
        positions.masked_fill_(attention_mask == 0, 1)
    else:
        attention_mask = positions = None
    timesteps = torch.linspace(1, eps, steps + 1)
    for i in range(steps):
        masked = x == mask_id
        logits = model(x, attention_mask=attention_mask, position_ids=positions).logits
        logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)  # position j is predicted by output j-1
        masked_logits = logits[masked]
        t, s = timesteps[i], timesteps[i + 1]
        if alg == "origin":
            p_transfer = 1 - s / t if i < steps - 1 else 1
            fill = torch.full((int(masked.sum()),), mask_id, dtype=torch.long)
            flip = torch.rand(fill.shape) < p_transfer
            _, fill[flip] = _dream_choose(masked_logits[flip], top_p, top_k, "origin")
            x[masked] = fill
            continue
        confidence, token = _dream_choose(masked_logits, top_p, top_k, alg)
        mean_masked = masked.sum() / masked.shape[0]
        n = int(mean_masked * (1 - s / t)) if i < steps - 1 else int(mean_masked)
        score = torch.full(x.shape, NEG_INF, dtype=logits.dtype)
        score[masked] = confidence
        if n > 0:
            if not alg_temp:
                picked = torch.topk(score, n).indices
            else:
                picked = torch.multinomial(F.softmax(score / alg_temp, dim=-1), num_samples=n)
            candidate = torch.full_like(x, mask_id)
            candidate[masked] = token
            rows = torch.arange(B)[:, None].expand_as(picked)
            x[rows, picked] = candidate[rows, picked]
    return x


# ------------------------------------------------------------------------------------------------------
# the checks


def _loud_mask(family, seed=5, boost=None):
    """A random model; with boost, the [MASK] row of the LM head is scaled up so [MASK] wins often."""
    init = {"init_std": 0.4} if family == "llada" else {"initializer_range": 0.4}
    model, tok = build_random_model(family, seed=seed, **init)
    if boost:
        head = model.get_output_embeddings().weight
        with torch.no_grad():
            head[model.config.mask_token_id] *= boost
    return model, tok


def _prompts(tok, texts=("def f(x):", "Q: 7 * 6 = ", "The cat sat")):
    enc = tok(list(texts), return_tensors="pt", padding=True, padding_side="left")
    return enc["input_ids"], enc["attention_mask"]


LLADA_CASES = [  # (remasking, gen_length, block_length, steps, cfg_scale)
    ("low_confidence", 16, 16, 16, 0.0),  # pure diffusion, one token per step
    ("low_confidence", 16, 16, 5, 0.0),  # uneven quota
    ("low_confidence", 16, 4, 8, 0.0),  # semi-autoregressive blocks
    ("random", 16, 16, 8, 0.0),
    ("random", 16, 4, 16, 0.0),
    ("low_confidence", 12, 4, 6, 1.5),  # CFG
    ("random", 12, 12, 12, 0.5),
]


@pytest.mark.parametrize("boost", [None, 6.0])
@pytest.mark.parametrize("remasking,gen_length,block_length,steps,cfg", LLADA_CASES)
def test_llada_official_mode_is_token_identical_to_generate_py(remasking, gen_length, block_length, steps, cfg,
                                                                boost):
    model, tok = _loud_mask("llada", boost=boost)
    ids, am = _prompts(tok)
    kw = dict(steps=steps, gen_length=gen_length, block_length=block_length, cfg_scale=cfg, remasking=remasking)
    torch.manual_seed(11)
    want = official_llada(model, ids, am, mask_id=model.config.mask_token_id, **kw)
    got, _ = llada_sample(model, ids, am, sampler_mode="official", generator=torch.Generator().manual_seed(11), **kw)
    assert torch.equal(got, want)


def test_llada_official_mode_with_the_eos_switches():
    model, tok = _loud_mask("llada", boost=3.0)
    ids, am = _prompts(tok)
    eos, eot = tok.eos_token_id, tok.convert_tokens_to_ids("!")
    for flags in (dict(logits_eos_inf=True), dict(confidence_eos_eot_inf=True)):
        kw = dict(steps=8, gen_length=16, block_length=8, **flags)
        want = official_llada(model, ids, am, mask_id=model.config.mask_token_id, eos_id=eos, eot_id=eot, **kw)
        got, _ = llada_sample(model, ids, am, sampler_mode="official", eos_id=eos, eot_id=eot, **kw)
        assert torch.equal(got, want), flags


def test_the_loud_mask_model_really_exercises_the_difference():
    """On the boosted model the official loop leaves [MASK] tokens behind and the guarded mode differs:
    the parity tests above are not vacuous."""
    model, tok = _loud_mask("llada", boost=6.0)
    ids, am = _prompts(tok)
    kw = dict(steps=8, gen_length=16, block_length=4)
    official, _ = llada_sample(model, ids, am, sampler_mode="official", **kw)
    guarded, _ = llada_sample(model, ids, am, sampler_mode="guarded", **kw)
    mask = model.config.mask_token_id
    assert (official[:, ids.shape[1]:] == mask).any()
    assert not (guarded[:, ids.shape[1]:] == mask).any()
    assert not torch.equal(official, guarded)


DREAM_CASES = [  # (alg, gen_length, steps, top_p, top_k, alg_temp)
    ("origin", 12, 12, None, None, None),
    ("origin", 12, 5, 0.95, None, None),
    ("maskgit_plus", 12, 12, None, None, None),
    ("maskgit_plus", 12, 5, 0.95, None, None),
    ("topk_margin", 12, 12, None, None, None),
    ("topk_margin", 12, 7, None, 50, None),
    ("entropy", 12, 12, 0.95, None, None),  # the paper's Dream setting (with steps = gen_length)
    ("entropy", 12, 4, None, None, None),
    ("entropy", 12, 6, None, None, 0.5),  # alg_temp > 0: positions drawn, not ranked
]


@pytest.mark.parametrize("boost", [None, 6.0])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("alg,gen_length,steps,top_p,top_k,alg_temp", DREAM_CASES)
def test_dream_official_mode_is_token_identical_to_diffusion_generate(alg, gen_length, steps, top_p, top_k,
                                                                      alg_temp, padded, boost):
    model, tok = _loud_mask("dream", boost=boost)
    ids, am = _prompts(tok, ("def f(x):", "Q: 7 * 6 = ", "The cat sat") if padded else ("abc", "xyz", "k=1"))
    kw = dict(steps=steps, alg=alg, top_p=top_p, top_k=top_k, alg_temp=alg_temp)
    torch.manual_seed(3)
    want = official_dream(model, ids, am, max_new_tokens=gen_length, mask_id=model.config.mask_token_id, **kw)
    got, _ = dream_sample(model, ids, am, gen_length=gen_length, sampler_mode="official",
                          generator=torch.Generator().manual_seed(3), **kw)
    assert torch.equal(got, want)


def test_generate_passes_the_mode_through_and_records_it():
    model, tok = _loud_mask("dream", boost=6.0)
    a = generate(model, tok, ["abc", "xyz"], steps=6, gen_length=6, alg="entropy", sampler_mode="official")
    b = generate(model, tok, ["abc", "xyz"], steps=6, gen_length=6, alg="entropy")
    assert a.settings["sampler_mode"] == "official" and b.settings["sampler_mode"] == "guarded"
    ids, am = _prompts(tok, ("abc", "xyz"))
    raw, _ = dream_sample(model, ids, am, steps=6, gen_length=6, alg="entropy", sampler_mode="official")
    assert torch.equal(a.ids, raw[:, ids.shape[1]:])
    assert not (b.ids == model.config.mask_token_id).any()


def test_unknown_sampler_mode_is_a_clear_error():
    model, tok = build_random_model("llada")
    with pytest.raises(ValueError, match="sampler_mode='exact' is unknown; allowed"):
        generate(model, tok, ["x"], steps=4, gen_length=4, sampler_mode="exact")
    assert SAMPLER_MODES == ("guarded", "official")


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_official_mode_fills_masks_inside_the_prompt_like_the_official_loops(family):
    """generate.py and diffusion_generate treat every [MASK] of the canvas alike, prompt included (infilling)."""
    model, tok = _loud_mask(family, boost=3.0)
    ids, am = _prompts(tok, ("abcdef", "uvwxyz"))
    mask = model.config.mask_token_id
    ids[0, 2] = ids[1, 4] = mask
    torch.manual_seed(0)
    if family == "llada":
        kw = dict(steps=8, gen_length=8, block_length=4)
        want = official_llada(model, ids, am, mask_id=mask, **kw)
        got, _ = llada_sample(model, ids, am, sampler_mode="official", **kw)
    else:
        kw = dict(steps=6, alg="maskgit_plus")
        want = official_dream(model, ids, am, max_new_tokens=8, mask_id=mask, **kw)
        got, _ = dream_sample(model, ids, am, gen_length=8, sampler_mode="official", **kw)
    assert torch.equal(got, want)
    assert not torch.equal(got[:, :ids.shape[1]], ids)  # the prompt's masks were filled
