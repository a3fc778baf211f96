"""The lm-eval model class: end to end through lm_eval.simple_evaluate, and parity with the package."""
import math

import pytest
from lm_eval import simple_evaluate
from lm_eval.api.instance import Instance
from lm_eval.tasks import TaskManager

from dllmq.decoding import generate
from dllmq.eval.lm import DllmqLM
from dllmq.eval.tasks import task_dir
from dllmq.likelihood import encode_pair, loglikelihood, mc_loglikelihood


def _req(kind, *args):
    return Instance(request_type=kind, doc={}, arguments=tuple(args), idx=0)


@pytest.fixture(scope="module")
def manager():
    return TaskManager(include_path=str(task_dir()), include_defaults=False)


def test_multiple_choice_and_generation_tasks_end_to_end(tiny_llada, manager):
    model, tok = tiny_llada
    lm = DllmqLM(model=model, tokenizer=tok, mc_samples=4, batch_size=16, progress=False)
    out = simple_evaluate(model=lm, tasks=["tinybench_general", "tinybench_math"], task_manager=manager, limit=2,
                          log_samples=True, bootstrap_iters=10)
    res = out["results"]
    assert 0 <= res["tinybench_general"]["acc,none"] <= 1
    assert 0 <= res["tinybench_math"]["exact_match,none"] <= 1
    # the generation really went through the sampler: two answers, cut at the task's stop strings
    answers = [s["resps"][0][0] for s in out["samples"]["tinybench_math"]]
    assert len(answers) == 2 and all(isinstance(a, str) and "\n\n" not in a for a in answers)


def test_registered_model_from_model_args(manager):
    out = simple_evaluate(model="dllmq", model_args="pretrained=tiny-random,mc_samples=2,batch_size=4,device=cpu",
                          tasks=["tinybench_code"], task_manager=manager, limit=2, bootstrap_iters=10)
    assert out["results"]["tinybench_code"]["pass@1,none"] == 0.0  # a random model writes no valid code


def test_loglikelihood_is_the_package_estimator(tiny_llada):
    model, tok = tiny_llada
    pairs = [("Question: Is 3 larger than 2?\nAnswer:", " yes"), ("The sky is", " blue"), ("ab", "c")]
    lm = DllmqLM(model=model, tokenizer=tok, mc_samples=8, batch_size=4, seed=5, progress=False)
    got = lm.loglikelihood([_req("loglikelihood", c, y) for c, y in pairs])
    want = loglikelihood(model, tok, pairs, mc_samples=8, batch_size=4, seed=5)
    assert [g for g, _ in got] == pytest.approx(want)
    assert all(greedy is False for _, greedy in got)


def test_rolling_loglikelihood_sums_windows(tiny_llada):
    model, tok = tiny_llada
    text = "abcdefghij klmnop"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    lm = DllmqLM(model=model, tokenizer=tok, mc_samples=4, batch_size=4, progress=False)
    whole = lm.loglikelihood_rolling([_req("loglikelihood_rolling", text)])[0]
    assert whole == pytest.approx(mc_loglikelihood(model, [[]], [ids], mc_samples=4, batch_size=4)[0][0])
    short = DllmqLM(model=model, tokenizer=tok, mc_samples=4, batch_size=4, max_length=8, progress=False)
    windowed = short.loglikelihood_rolling([_req("loglikelihood_rolling", text)])[0]
    assert math.isfinite(windowed) and windowed < 0 and windowed != pytest.approx(whole)


def test_generate_until_cuts_at_stop_strings(tiny_llada):
    model, tok = tiny_llada
    lm = DllmqLM(model=model, tokenizer=tok, progress=False)
    kwargs = {"until": [], "max_gen_toks": 16, "steps": 8, "block_length": 8}
    full = generate(model, tok, ["Question: hi\nAnswer:"], **lm.decoding_for(kwargs)).text[0]
    assert len(full) > 4
    stop = full[3]
    cut = lm.generate_until([_req("generate_until", "Question: hi\nAnswer:", dict(kwargs, until=[stop]))])[0]
    assert cut == full.split(stop)[0] and stop not in cut


def test_decoding_settings_precedence(tiny_llada, tiny_dream):
    model, tok = tiny_llada
    task = {"max_gen_toks": 32, "steps": 16, "block_length": 8}
    assert DllmqLM(model=model, tokenizer=tok).decoding_for(task) == dict(
        steps=16, gen_length=32, block_length=8, temperature=0.0, cfg_scale=0.0, remasking="low_confidence",
        sampler_mode="guarded")
    mine = DllmqLM(model=model, tokenizer=tok, gen_length=64, steps=64, block_length=32).decoding_for(task)
    assert (mine["gen_length"], mine["steps"], mine["block_length"]) == (64, 64, 32)
    plain = DllmqLM(model=model, tokenizer=tok).decoding_for({"max_gen_toks": 24})
    assert plain["steps"] == plain["block_length"] == plain["gen_length"] == 24  # one token per step
    dream = DllmqLM(model=tiny_dream[0], tokenizer=tiny_dream[1]).decoding_for(task)
    assert dream["alg"] == "entropy" and "block_length" not in dream


def test_dream_family_scores_and_generates(tiny_dream):
    model, tok = tiny_dream
    lm = DllmqLM(model=model, tokenizer=tok, mc_samples=4, batch_size=4, progress=False)
    (value, _), = lm.loglikelihood([_req("loglikelihood", "", "xyz")])  # empty context gets a lead token
    assert math.isfinite(value) and value < 0
    text = lm.generate_until([_req("generate_until", "abc", {"until": ["\n"], "max_gen_toks": 8})])[0]
    assert isinstance(text, str)


def test_bad_arguments_are_clear_errors(tiny_llada, tiny_llama):
    model, tok = tiny_llada
    with pytest.raises(ValueError, match="remasking"):
        DllmqLM(model=model, tokenizer=tok, remasking="best")
    with pytest.raises(ValueError, match="mc_samples"):
        DllmqLM(model=model, tokenizer=tok, mc_samples=0)
    with pytest.raises(ValueError, match="tokenizer"):
        DllmqLM(model=model)
    with pytest.raises(ValueError, match="diffusion"):
        DllmqLM(model=tiny_llama[0], tokenizer=tiny_llama[1])
    with pytest.raises(ValueError, match="dtype"):
        DllmqLM(pretrained="tiny-random", dtype="int3")
