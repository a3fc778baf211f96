"""Each likelihood definition against its own exact enumeration, and against the official estimators
restated in our own words: LLaDA's `get_log_likelihood.py` / `eval_llada.py` (count-stratified masks,
continuation alone) and Dream's `eval/eval.py` (`_eval_target_nll_mc`, log_type "ftb": independent masks
with stratified t, the continuation followed by an EOS that is never masked, logits shifted by one).
"""
import itertools

import pytest
import torch
import torch.nn.functional as F
from lm_eval.api.instance import Instance
from lm_eval.api.registry import get_model

from dllmq.eval.lm import DllmqLM
from dllmq.likelihood import (DEFINITIONS, _score_rows, encode_pair, exact_elbo, loglikelihood,
                              mc_loglikelihood, subset_weight)
from dllmq.models import build_random_model

CTX, CONT = [10, 20, 30, 40], [50, 61, 72]


@pytest.fixture(scope="module")
def llada():
    return build_random_model("llada", seed=2, init_std=0.3)


@pytest.fixture(scope="module")
def dream():
    return build_random_model("dream", seed=2, initializer_range=0.3)


# ------------------------------------------------------------------------------------------------------
# the official estimators (their random numbers come from torch's global RNG)


@torch.no_grad()
def official_llada_estimate(model, prefix, target, mc_num, batch):
    """get_log_likelihood(): stratified mask counts round(k + i L / b) wrapped into 1..L, random positions."""
    seq = torch.tensor(prefix + target)[None].repeat(batch, 1)
    L, mask_id = len(target), model.config.mask_token_id
    values = []
    for _ in range(mc_num // batch):
        k = torch.randint(1, L + 1, ())
        counts = torch.round(torch.linspace(float(k), k + (batch - 1) * (L / batch), steps=batch)).long()
        counts = ((counts - 1) % L) + 1
        hide = torch.arange(L).repeat(batch, 1) < counts[:, None]
        for r in range(batch):
            hide[r] = hide[r][torch.randperm(L)]
        hide = torch.cat([torch.zeros(batch, len(prefix), dtype=torch.bool), hide], dim=1)
        noisy = torch.where(hide, mask_id, seq)
        ratio = (counts / L)[:, None].repeat(1, seq.shape[1])
        logits = model(noisy).logits
        loss = F.cross_entropy(logits[hide], seq[hide], reduction="none") / ratio[hide]
        values.append(-(loss.sum() / batch).item())
    return values


@torch.no_grad()
def official_dream_estimate(model, prefix, target, mc_num, batch, eps=1e-3):
    """_eval_target_nll_mc() with log_type "ftb": target = continuation + EOS; the first and the last
    position are never masked; only the target part takes the noise."""
    target = target + [model.config.eos_token_id]
    seq = torch.tensor(prefix + target)[None].repeat(batch, 1)
    b, l = seq.shape
    mask_id = model.config.mask_token_id
    values = []
    for _ in range(max(mc_num // batch, 1)):
        u0 = torch.rand(1)
        t = (u0 + torch.arange(b).float() / b) % 1
        p_mask = ((1 - eps) * t + eps)[:, None].repeat(1, l)
        hide = torch.rand((b, l)) < p_mask
        hide[:, 0] = hide[:, -1] = False
        noisy = seq.clone()
        noisy[:, -len(target):] = torch.where(hide, mask_id, seq)[:, -len(target):]
        hide = noisy == mask_id
        logits = model(noisy).logits
        logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        loss = F.cross_entropy(logits[hide], seq[hide], reduction="none") / p_mask[hide]
        values.append(-(loss.sum() / batch).item())
    return values


def _mean_se(values):
    v = torch.tensor(values, dtype=torch.float64)
    return float(v.mean()), float(v.std() / len(v) ** 0.5)


@torch.no_grad()
def llada_estimator_mean(model, prefix, target, batch):
    """The exact expectation of LLaDA's estimator, stratification rounding included (torch.round sends
    x.5 to even, so a row's count is not always uniform on 1..L; the ELBO assumes it is)."""
    L = len(target)
    by_size = {}
    for c in range(1, L + 1):
        rows = []
        for S in itertools.combinations(range(L), c):
            m = torch.zeros(L, dtype=torch.bool)
            m[list(S)] = True
            rows.append((prefix, target, m, 1.0))
        by_size[c] = -sum(_score_rows(model, rows, "llada", model.config.mask_token_id, 0.0, 0)) / len(rows)
    total = 0.0
    for k in range(1, L + 1):
        counts = torch.round(torch.linspace(float(k), k + (batch - 1) * (L / batch), steps=batch)).long()
        counts = ((counts - 1) % L) + 1
        total += sum(L / c * by_size[c] for c in counts.tolist()) / batch
    return total / L


# ------------------------------------------------------------------------------------------------------
# LLaDA: the official definition is the bare continuation (the two definitions coincide)


def test_llada_official_is_the_bare_continuation_and_matches_get_log_likelihood(llada):
    model, _ = llada
    official = mc_loglikelihood(model, [CTX], [CONT], mc_samples=128, batch_size=32, seed=3)[0]
    bare = mc_loglikelihood(model, [CTX], [CONT], mc_samples=128, batch_size=32, seed=3, definition="bare")[0]
    assert official == bare  # same masks, same quantity
    assert exact_elbo(model, CTX, CONT) == exact_elbo(model, CTX, CONT, definition="bare")
    target = llada_estimator_mean(model, CTX, CONT, batch=32)
    ours, ours_se = official
    assert abs(ours - target) < 3 * ours_se
    torch.manual_seed(0)
    theirs, theirs_se = _mean_se(official_llada_estimate(model, CTX, CONT, mc_num=256, batch=4))
    assert abs(theirs - llada_estimator_mean(model, CTX, CONT, batch=4)) < 3 * theirs_se
    # the estimator's mean and the ELBO differ only by the rounding of the stratified counts
    assert abs(target - exact_elbo(model, CTX, CONT)) < 0.05 * abs(target)


def test_llada_rows_score_exactly_as_the_official_loss(llada):
    """Deterministic part: for the same masks, our weighted per-row losses equal get_log_likelihood's."""
    model, _ = llada
    g = torch.Generator().manual_seed(1)
    L, b, mask_id = len(CONT), 6, model.config.mask_token_id
    counts = torch.randint(1, L + 1, (b,), generator=g)
    hide = torch.stack([torch.randperm(L, generator=g) < c for c in counts])
    ours = _score_rows(model, [(CTX, CONT, hide[r], int(counts[r]) / L) for r in range(b)], "llada", mask_id, 0.0, 0)
    seq = torch.tensor(CTX + CONT)[None].repeat(b, 1)
    full = torch.cat([torch.zeros(b, len(CTX), dtype=torch.bool), hide], 1)
    with torch.no_grad():
        logits = model(torch.where(full, mask_id, seq)).logits
    ce = F.cross_entropy(logits[full], seq[full], reduction="none") / (counts / L)[:, None].repeat(1, seq.shape[1])[full]
    assert sum(ours) / b == pytest.approx((ce.sum() / b).item(), rel=1e-6)


# ------------------------------------------------------------------------------------------------------
# Dream: the official definition keeps an EOS visible after the continuation


def test_dream_definitions_each_match_their_exact_enumeration(dream):
    model, _ = dream
    official_exact = exact_elbo(model, CTX, CONT)
    bare_exact = exact_elbo(model, CTX, CONT, definition="bare")
    assert exact_elbo(model, CTX, CONT, definition="official") == official_exact
    # the two quantities really differ on this model (a visible EOS is information about the answer)
    assert abs(official_exact - bare_exact) > 1.0
    values = {}
    for definition, exact in (("official", official_exact), ("bare", bare_exact)):
        value, se = mc_loglikelihood(model, [CTX], [CONT], mc_samples=1024, batch_size=128, group_size=32, seed=1,
                                     definition=definition)[0]
        assert se > 0 and abs(value - exact) < 3 * se, definition
        values[definition] = value
    # both definitions draw the same masks (common random numbers), so their difference is estimated far
    # more precisely than either value (whose 1/p weights make single estimates noisy)
    mc_gap, exact_gap = values["official"] - values["bare"], official_exact - bare_exact
    assert abs(mc_gap - exact_gap) < 0.1 * abs(exact_gap)


def test_dream_official_matches_the_restated_harness_estimator(dream):
    model, _ = dream
    torch.manual_seed(0)
    theirs, theirs_se = _mean_se(official_dream_estimate(model, CTX, CONT, mc_num=256, batch=4))
    assert abs(theirs - exact_elbo(model, CTX, CONT)) < 3 * theirs_se


def test_dream_rows_score_exactly_as_the_harness_loss(dream):
    """Deterministic part: same masks -> the same loss as the harness (shift by one, EOS visible, 1/p)."""
    model, _ = dream
    g = torch.Generator().manual_seed(2)
    L, b, mask_id, eos = len(CONT), 6, model.config.mask_token_id, model.config.eos_token_id
    p = 0.05 + 0.9 * torch.rand(b, generator=g)
    hide = torch.rand(b, L, generator=g) < p[:, None]
    hide[0] = True  # at least one row with every continuation token masked
    rows = [(CTX, CONT + [eos], torch.cat([hide[r], torch.zeros(1, dtype=torch.bool)]), float(p[r])) for r in range(b)]
    ours = _score_rows(model, rows, "dream", mask_id, 0.0, 0)
    seq = torch.tensor(CTX + CONT + [eos])[None].repeat(b, 1)
    full = torch.cat([torch.zeros(b, len(CTX), dtype=torch.bool), hide, torch.zeros(b, 1, dtype=torch.bool)], 1)
    with torch.no_grad():
        logits = model(torch.where(full, mask_id, seq)).logits
    logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
    ce = F.cross_entropy(logits[full], seq[full], reduction="none") / p[:, None].repeat(1, seq.shape[1])[full]
    assert sum(ours) / b == pytest.approx((ce.sum() / b).item(), rel=1e-6)


def test_subset_weights_give_every_token_total_weight_one():
    """sum over sets S containing token i of weight(|S|) = 1 for both families: the ELBO is unbiased per token."""
    import math
    for family in ("llada", "dream"):
        for L in (1, 2, 5, 8):
            total = sum(math.comb(L - 1, k - 1) * subset_weight(family, k, L) for k in range(1, L + 1))
            assert total == pytest.approx(1.0, abs=1e-12)
    assert subset_weight("dream", 2, 3, eps=0.0) == pytest.approx(subset_weight("llada", 2, 3))


def test_common_random_numbers_and_per_request_seeds_hold_for_the_official_definition(dream):
    model, _ = dream
    other, _ = build_random_model("dream", seed=2, initializer_range=0.3)
    with torch.no_grad():
        for prm in other.parameters():
            prm.add_(0.01 * torch.randn_like(prm))
    requests = ([CTX, [7, 8, 9]], [CONT, [11, 12, 13, 14]])
    a = mc_loglikelihood(model, *requests, mc_samples=32, seed=5)
    b = mc_loglikelihood(other, *requests, mc_samples=32, seed=5)
    c = mc_loglikelihood(other, *requests, mc_samples=32, seed=6)
    assert mc_loglikelihood(model, *requests, mc_samples=32, seed=5) == a  # repeatable
    for i in range(2):  # same masks for both models: their difference is far less noisy than a reseed
        assert abs(a[i][0] - b[i][0]) < abs(b[i][0] - c[i][0]) or abs(a[i][0] - b[i][0]) < 0.2
        alone = mc_loglikelihood(model, [requests[0][i]], [requests[1][i]], mc_samples=32, seed=5)[0]
        assert alone[0] == pytest.approx(a[i][0], abs=1e-4)  # a request's masks do not depend on its batch


# ------------------------------------------------------------------------------------------------------
# the string API and the lm-eval class


def _req(context, continuation):
    return Instance(request_type="loglikelihood", doc={}, arguments=(context, continuation), idx=0)


def test_string_api_and_lm_eval_class_use_the_harness_pair(dream):
    model, tok = dream
    pairs = [("Q: 2+2=", " 4"), ("The sky is", " blue")]
    official = loglikelihood(model, tok, pairs, mc_samples=8, batch_size=8, seed=4)
    want = []
    for c, y in pairs:  # Dream's harness: BOS + context; continuation + EOS (added by mc_loglikelihood)
        ctx, cont = encode_pair(tok, c, y)
        want.append(mc_loglikelihood(model, [[tok.bos_token_id] + ctx], [cont], mc_samples=8, batch_size=8,
                                     seed=4, eos_id=tok.eos_token_id)[0][0])
    assert official == pytest.approx(want)
    lm = DllmqLM(model=model, tokenizer=tok, mc_samples=8, batch_size=8, seed=4, progress=False)
    assert [v for v, _ in lm.loglikelihood([_req(c, y) for c, y in pairs])] == pytest.approx(official)
    bare = DllmqLM(model=model, tokenizer=tok, mc_samples=8, batch_size=8, seed=4, likelihood="bare", progress=False)
    assert [v for v, _ in bare.loglikelihood([_req(c, y) for c, y in pairs])] == pytest.approx(
        loglikelihood(model, tok, pairs, mc_samples=8, batch_size=8, seed=4, definition="bare"))


def test_likelihood_definition_from_model_args():
    cls = get_model("dllmq")
    lm = cls.create_from_arg_string("pretrained=tiny-random-dream,likelihood=bare,mc_samples=4,batch_size=4,"
                                    "device=cpu,sampler_mode=official,top_k=50")
    assert (lm.likelihood, lm.sampler_mode, lm.top_k) == ("bare", "official", 50)
    assert cls.create_from_arg_string("pretrained=tiny-random-dream,device=cpu").likelihood == "official"
    with pytest.raises(ValueError, match="definition='exact' is unknown; allowed"):
        cls.create_from_arg_string("pretrained=tiny-random-dream,likelihood=exact,device=cpu")


def test_unknown_definition_is_a_clear_error(dream):
    model, _ = dream
    with pytest.raises(ValueError, match=r"allowed: \('official', 'bare'\)"):
        mc_loglikelihood(model, [CTX], [CONT], definition="eos")
    assert DEFINITIONS == ("official", "bare")
