"""LLaDA and Dream samplers: quota, invariants of the trace, seeding, batching, argument errors."""
import pytest
import torch

from dllmq.decoding import generate, llada_sample, unmask_quota
from dllmq.models import build_random_model

PROMPTS = ["def add(a, b):", "Q: 3 + 4 =", "The cat"]


@pytest.fixture(scope="module")
def peaked_llada():
    # larger init -> peaked distributions, so greedy choices are not near-ties
    return build_random_model("llada", seed=1, init_std=0.4)


def test_unmask_quota_spreads_the_remainder_over_the_first_steps():
    assert unmask_quota(10, 4) == [3, 3, 2, 2]
    assert unmask_quota(32, 8) == [4] * 8
    assert unmask_quota(32, 32) == [1] * 32
    assert sum(unmask_quota(17, 5)) == 17


def test_trace_quota_commits_never_change_and_blocks_go_left_to_right(peaked_llada):
    model, tok = peaked_llada
    gen = generate(model, tok, PROMPTS, steps=8, gen_length=20, block_length=10, trace=True)
    mask = model.config.mask_token_id
    assert len(gen.trace) == 8
    quota = unmask_quota(10, 4) * 2
    final = gen.ids
    for t in gen.trace:
        for row in range(len(PROMPTS)):
            assert len(t.positions[row]) == quota[t.step]
            # everything right of the current block is still masked before the step ...
            block_end = (t.block + 1) * 10
            assert (t.canvas[row, block_end:] == mask).all()
            # ... and the positions unmasked at this step lie inside the block
            assert ((t.positions[row] >= t.block * 10) & (t.positions[row] < block_end)).all()
            # committed tokens never change afterwards
            committed = t.canvas[row] != mask
            assert torch.equal(t.canvas[row][committed], final[row][committed])
            assert torch.equal(final[row][t.positions[row]], t.tokens[row])
    order = gen.unmask_order()
    assert (order >= 0).all()
    assert (gen.ids != mask).all()


def test_seeded_runs_repeat_exactly_and_seeds_differ(peaked_llada):
    model, tok = peaked_llada
    kw = dict(steps=8, gen_length=16, block_length=8, temperature=1.0, remasking="random")
    a = generate(model, tok, PROMPTS, seed=3, **kw).ids
    b = generate(model, tok, PROMPTS, seed=3, **kw).ids
    c = generate(model, tok, PROMPTS, seed=4, **kw).ids
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_greedy_batched_equals_one_prompt_at_a_time(family):
    model, tok = build_random_model(family, seed=1, **({"init_std": 0.4} if family == "llada" else {"initializer_range": 0.4}))
    kw = dict(steps=8, gen_length=16) | ({"block_length": 8} if family == "llada" else {"alg": "maskgit_plus"})
    batched = generate(model, tok, PROMPTS, **kw)
    for i, p in enumerate(PROMPTS):
        single = generate(model, tok, [p], **kw)
        assert torch.equal(single.ids[0], batched.ids[i])
        assert single.text[0] == batched.text[i]


def test_batch_size_chunks_match_one_batch(peaked_llada):
    model, tok = peaked_llada
    kw = dict(steps=4, gen_length=8, block_length=4, trace=True)
    whole = generate(model, tok, PROMPTS, **kw)
    chunked = generate(model, tok, PROMPTS, batch_size=2, **kw)
    assert torch.equal(whole.ids, chunked.ids)
    assert len(chunked.trace) == 4 and len(chunked.trace[0].positions) == 3


def test_cfg_with_padded_batch_runs_and_changes_the_result(peaked_llada):
    model, tok = peaked_llada
    plain = generate(model, tok, PROMPTS, steps=8, gen_length=8, block_length=8)
    guided = generate(model, tok, PROMPTS, steps=8, gen_length=8, block_length=8, cfg_scale=2.0)
    assert guided.ids.shape == plain.ids.shape
    assert not torch.equal(guided.ids, plain.ids)


def test_confidence_eos_eot_inf_fills_eos_last(peaked_llada):
    model, tok = peaked_llada
    eos = tok.eos_token_id
    gen = generate(model, tok, PROMPTS, steps=8, gen_length=8, block_length=8, trace=True,
                   confidence_eos_eot_inf=True, stop_at_eos=False)
    for t in gen.trace:
        for row, (tokens, conf) in enumerate(zip(t.tokens, t.confidences)):
            is_eos = tokens == eos
            # an EOS prediction is only committed once no other masked position is left to choose
            assert torch.isinf(conf[is_eos]).all()


@pytest.mark.parametrize("alg", ["origin", "maskgit_plus", "topk_margin", "entropy"])
def test_dream_algorithms_fill_the_canvas(alg):
    model, tok = build_random_model("dream")
    gen = generate(model, tok, PROMPTS, steps=6, gen_length=12, alg=alg, trace=True, temperature=0.7, seed=1)
    assert (gen.ids != model.config.mask_token_id).all()
    assert sum(len(p) for t in gen.trace for p in t.positions) == 12 * len(PROMPTS)


@pytest.mark.parametrize("kwargs,match", [
    (dict(gen_length=10, block_length=4, steps=10), "block_length"),
    (dict(gen_length=16, block_length=4, steps=6), "number of blocks"),
    (dict(gen_length=16, block_length=16, steps=32), "steps=32 exceeds"),
    (dict(gen_length=16, block_length=16, steps=16, remasking="top_p"), "remasking"),
    (dict(gen_length=16, block_length=16, steps=16, temperature=-1.0), "temperature"),
    (dict(gen_length=16, block_length=16, steps=16, cfg_scale=-0.5), "cfg_scale"),
    (dict(gen_length=0, block_length=16, steps=16), "gen_length"),
    (dict(gen_length=16, block_length=16, steps=0), "steps"),
])
def test_invalid_llada_arguments_get_clear_errors(peaked_llada, kwargs, match):
    model, tok = peaked_llada
    with pytest.raises(ValueError, match=match):
        generate(model, tok, ["x"], **kwargs)


def test_invalid_dream_and_family_arguments():
    dream, tok = build_random_model("dream")
    with pytest.raises(ValueError, match="alg"):
        generate(dream, tok, ["x"], steps=4, gen_length=4, alg="greedy")
    with pytest.raises(ValueError, match="no blocks"):
        generate(dream, tok, ["x"], steps=4, gen_length=8, block_length=4)
    llama, tok = build_random_model("llama")
    with pytest.raises(ValueError, match="autoregressive"):
        generate(llama, tok, ["x"], steps=4, gen_length=4)
    with pytest.raises(TypeError, match="list of strings"):
        generate(dream, tok, "x", steps=4, gen_length=4)


def test_llada_sample_on_token_ids_keeps_the_prompt(peaked_llada):
    model, _ = peaked_llada
    prompt = torch.randint(4, 100, (2, 5))
    x, trace = llada_sample(model, prompt, steps=4, gen_length=8, block_length=8)
    assert trace is None
    assert torch.equal(x[:, :5], prompt)
