"""MC masked-diffusion likelihood against the exact ELBO and exact log-softmax."""
import pytest
import torch

from dllmq.likelihood import exact_elbo, llada_mask_counts, loglikelihood, mc_loglikelihood
from dllmq.models import build_random_model


@pytest.fixture(scope="module")
def llada():
    return build_random_model("llada", seed=2, init_std=0.3)


@pytest.mark.parametrize("L", [2, 3])
def test_mc_estimate_matches_exact_elbo_within_stderr(llada, L):
    model, _ = llada
    ctx, cont = [10, 20, 30, 40], [50, 60, 70][:L]
    exact = exact_elbo(model, ctx, cont)
    (estimate, stderr), = mc_loglikelihood(model, [ctx], [cont], mc_samples=128, batch_size=32)
    assert stderr > 0
    assert abs(estimate - exact) < 3 * stderr


@pytest.mark.parametrize("family,definition", [("llada", "official"), ("llada", "bare"), ("dream", "bare"),
                                               ("dream", "official")])
def test_one_token_continuation_is_exact_log_softmax(family, definition):
    model, _ = build_random_model(family, seed=2)
    ctx = [10, 20, 30]
    (value, stderr), = mc_loglikelihood(model, [ctx], [[44]], mc_samples=128, definition=definition)
    # Dream's official definition scores the token with the EOS visible after it
    tail = [model.config.eos_token_id] if (family, definition) == ("dream", "official") else []
    logits = model(torch.tensor([ctx + [model.config.mask_token_id] + tail])).logits[0].float()
    row = logits[len(ctx)] if family == "llada" else logits[len(ctx) - 1]  # Dream: shifted by one
    assert stderr == 0.0
    assert value == pytest.approx(torch.log_softmax(row, -1)[44].item(), abs=1e-5)


def test_stratified_counts_cover_one_to_L():
    g = torch.Generator().manual_seed(0)
    for L in (1, 3, 7, 40):
        counts = llada_mask_counts(L, 16, g)
        assert counts.min() >= 1 and counts.max() <= L


def test_common_random_numbers_make_model_differences_low_variance(llada):
    model, _ = llada
    other, _ = build_random_model("llada", seed=2, init_std=0.3)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.01 * torch.randn_like(p))
    pair = ([10, 20, 30], [40, 50, 60, 70, 80])
    same = [mc_loglikelihood(m, [pair[0]], [pair[1]], mc_samples=32, seed=5)[0][0] for m in (model, other)]
    diff_seed = mc_loglikelihood(other, [pair[0]], [pair[1]], mc_samples=32, seed=6)[0][0]
    assert abs(same[0] - same[1]) < abs(same[0] - diff_seed) or abs(same[0] - same[1]) < 0.5
    # same seed, same model, same request: identical
    again = mc_loglikelihood(model, [pair[0]], [pair[1]], mc_samples=32, seed=5)[0][0]
    assert again == same[0]


def test_batched_requests_equal_one_at_a_time(llada):
    model, tok = llada
    pairs = [("Q: 1+1=", "2"), ("Q: 12+30=", "42"), ("A long context here:", " yes")]
    together = loglikelihood(model, tok, pairs, mc_samples=16, batch_size=8)
    alone = [loglikelihood(model, tok, [p], mc_samples=16, batch_size=8)[0] for p in pairs]
    assert together == pytest.approx(alone, abs=1e-4)


def test_invalid_arguments(llada):
    model, _ = llada
    with pytest.raises(ValueError, match="mc_samples=10 must be a multiple of group_size=4"):
        mc_loglikelihood(model, [[1]], [[2, 3]], mc_samples=10, batch_size=4)
    with pytest.raises(ValueError, match="continuation 0 is empty"):
        mc_loglikelihood(model, [[1]], [[]])
    llama, _ = build_random_model("llama")
    with pytest.raises(ValueError, match="autoregressive"):
        mc_loglikelihood(llama, [[1]], [[2]])
