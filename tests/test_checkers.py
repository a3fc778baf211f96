"""Every scored checker: the right answer gets full points, plausible wrong answers fail with a useful hint.

Each wrong answer is a mistake a student makes (a wrong factor, the wrong axis, an off-by-one, a transposed
matrix, a missing clamp); the checker must give it 0 points and a hint containing the expected words.
The scoring machinery itself (side channel, raise mode, stubs, crashing student code) is tested at the end.
"""
import json
import math

import pandas as pd
import pytest
import torch

from dllmq.exercises import catalog, scoring
from dllmq.exercises import n01_decoding as n01, n02_outliers as n02, n03_quantization_basics as n03
from dllmq.exercises import n04_gptq as n04, n05_awq as n05, n06_smoothquant as n06, n07_quarot as n07
from dllmq.exercises import n08_duquant as n08, n09_evaluating_dllms as n09, n10_reproduce_findings as n10
from dllmq.exercises import n11_beyond_the_paper as n11
from dllmq.quant.quantizer import fake_quantize


# -- right answers, written from the defining equations (as a student would) ------------------------------

def quota(n, s):
    base, rest = divmod(n, s)
    return [base + (1 if j < rest else 0) for j in range(s)]


def select(conf, masked, k):
    return conf.masked_fill(~masked, -float("inf")).topk(k).indices


def token_fq(x, bits, dim=-1, contain_zero=True):
    qmax = 2 ** bits - 1
    lo, hi = x.amin(dim, keepdim=True), x.amax(dim, keepdim=True)
    if contain_zero:
        lo, hi = lo.clamp(max=0), hi.clamp(min=0)
    scale = ((hi - lo) / qmax).clamp(min=1e-8)
    zero = torch.round(-lo / scale)
    return (torch.clamp(torch.round(x / scale) + zero, 0, qmax) - zero) * scale


def is_massive(x):
    a = x.abs()
    return bool(a.max() >= 100 and a.max() >= 1000 * a.median())


def asym_params(x, bits, levels=None, clamp=True):
    levels = 2 ** bits - 1 if levels is None else levels
    s = (x.max() - x.min()) / levels
    z = -torch.round(x.min() / s)
    return s, (torch.clamp(z, 0, 2 ** bits - 1) if clamp else z)


def group_fq(w, bits, group_size):
    rows = w.reshape(-1, group_size)
    lo, hi = rows.min(1, keepdim=True).values, rows.max(1, keepdim=True).values
    s = (hi - lo) / (2 ** bits - 1)
    z = torch.clamp(-torch.round(lo / s), 0, 2 ** bits - 1)
    q = torch.clamp(torch.round(rows / s) + z, 0, 2 ** bits - 1)
    return (s * (q - z)).reshape(w.shape)


def column_step(W, Hinv, i, spec, transposed=False, divide=True, quantize_i=True):
    q = fake_quantize(W, spec)[:, i]
    err = (W[:, i] - q) / (Hinv[i, i] if divide else 1.0)
    row = Hinv[i:, i] if transposed else Hinv[i, i:]
    start = i if quantize_i else i + 1
    W[:, start:] -= err[:, None] * row[start - i:][None, :]
    return W


def awq_scale(x_mean, r, clamp=True, norm="geo", exponent=None):
    s = x_mean.pow(r if exponent is None else exponent)
    if clamp:
        s = s.clamp(min=1e-4)
    return s / ((s.max() * s.min()).sqrt() if norm == "geo" else s.mean())


def sylvester(n, block=lambda H: torch.cat([torch.cat([H, H], 1), torch.cat([H, -H], 1)], 0)):
    H = torch.ones(1, 1)
    while H.shape[0] < n:
        H = block(H)
    return H


def zigzag(m, b, reverse=True, descending=True):
    K = m.numel() // b
    blocks = [[] for _ in range(K)]
    for rank, ch in enumerate(torch.argsort(m, descending=descending).tolist()):
        pos = rank % (2 * K) if reverse else rank % K
        blocks[pos if pos < K else 2 * K - 1 - pos].append(ch)
    return torch.tensor([c for blk in blocks for c in blk])


def band(drop_pct):
    d = -drop_pct
    return "negligible" if d < 1 else "moderate" if d <= 4 else "significant"


# -- the data some checkers compare against ---------------------------------------------------------------

@pytest.fixture(scope="module")
def down_stats():
    from dllmq.activations import collect_activations
    from dllmq.models import build_random_model
    model, _ = build_random_model("llada", seed=0)
    stats = collect_activations(model, torch.randint(4, 100, (2, 16), generator=torch.Generator().manual_seed(0)),
                                roles=("down",), progress=False)
    down = stats.frame()
    best = int(down.loc[down["absmax"].idxmax(), "layer"])
    return stats, best, sorted(set(down["layer"]))


@pytest.fixture(scope="module")
def sweep():
    from dllmq.lab import n03_quantization_basics as lab03
    return lab03.outlier_sweep(torch.randn(8, 64, generator=torch.Generator().manual_seed(0)), [1, 100],
                               bits=4, group_size=16)


ALPHA_TABLE = pd.DataFrame({"alpha": [0.0, 0.25, 0.5, 0.75, 1.0], "act_error": [0.9, 0.5, 0.3, 0.2, 0.1],
                            "weight_error": [0.01, 0.02, 0.05, 0.2, 0.6], "output_error": [0.8, 0.4, 0.25, 0.3, 0.7]})
FIVE_COLUMNS = ["WinoGrande", "PIQA", "ARC-C", "Hellaswag", "MMLU"]  # Table 1's average leaves ARC-E out
SIX_COLUMNS = ["WinoGrande", "PIQA", "ARC-E", "ARC-C", "Hellaswag", "MMLU"]


def awq_drop(columns):
    from dllmq import paper
    t1 = paper.table(1)
    awq = t1.loc[("LLaDA-8B-Instruct", "W4A16 g128", "AWQ"), columns].mean()
    fp = t1.loc[("LLaDA-8B-Instruct", "FP", "FP"), columns].mean()
    return (awq / fp - 1) * 100


def cells(variants=("low_confidence", "random"), task="tinybench_math", model="tiny", twice=False):
    from dllmq.sweeps import grid
    got = grid([model], ["fp", "rtn:w3a16g128"], [task], [{"remasking": v} for v in variants])
    return got + got if twice else got


# -- the cases: eid -> (checker, right answer, [(mistake, wrong answer, words the hint must contain)]) -------
# An answer is what the student passes first; `Late(f)` answers are built from the fixtures (f(ctx)).
# EXTRA[eid](ctx) gives the checker's further arguments (the data the answer was read from).

class Late:
    def __init__(self, make):
        self.make = make


def unmasked_spike(x):
    return bool(x.max() >= 100 and x.max() >= 1000 * x.abs().median())


def by_mean(x):
    return bool(x.abs().max() >= 100 and x.abs().max() >= 1000 * x.abs().mean())


def symmetric_fq(x, b):
    s = x.abs().amax(-1, keepdim=True) / (2 ** (b - 1) - 1)
    return torch.round(x / s) * s


def other_layer(c):
    stats, best, layers = c["down_stats"]
    return next(layer for layer in layers if layer != best)


RECIPES = ["fp", "rtn:w3a16g128"]

CASES = {
    "nb01_ex1": (n01.check_quota, quota, [
        ("remainder to the LAST steps", lambda n, s: [n // s + (1 if j >= s - n % s else 0) for j in range(s)],
         "FIRST"),
        ("remainder dropped", lambda n, s: [n // s] * s, "unmask all"),
        ("off by one: steps + 1 entries", lambda n, s: quota(n, s) + [0], "one entry per step"),
    ]),
    "nb01_ex2": (n01.check_select, select, [
        ("mask ignored: committed tokens chosen again", lambda conf, m, k: conf.topk(k).indices, "already unmasked"),
        ("least confident instead of most",
         lambda conf, m, k: conf.masked_fill(~m, float("inf")).topk(k, largest=False).indices, "most confident"),
        ("off by one: k - 1 positions", lambda conf, m, k: select(conf, m, k)[: k - 1], "exactly k"),
    ]),
    "nb02_ex1": (n02.check_fake_quant, token_fq, [
        ("symmetric grid", symmetric_fq, "zero = round"),
        ("wrong axis: per channel", lambda x, b: token_fq(x, b, dim=0), "ROW"),
        ("missing clamp: range does not contain 0", lambda x, b: token_fq(x, b, contain_zero=False),
         "lo = min(min(x), 0)"),
    ]),
    "nb02_ex2": (n02.check_is_massive, is_massive, [
        ("absolute test only", lambda x: bool(x.abs().max() >= 100), "1000"),
        ("relative test only", lambda x: bool(x.abs().max() >= 1000 * x.abs().median()), "AND"),
        ("no |x|: misses a negative spike", unmasked_spike, "NEGATIVE"),
        ("mean instead of median", by_mean, "median"),
    ]),
    "nb02_ex3": (n02.check_massive_layer, Late(lambda c: c["down_stats"][1]), [
        ("another block", Late(other_layer), "absmax"),
        ("a float instead of a block index", Late(lambda c: float(c["down_stats"][1])), "int"),
    ]),
    "nb03_ex1": (n03.check_asym_params, asym_params, [
        ("symmetric scale", lambda x, b: (x.abs().max() / (2 ** (b - 1) - 1), 0), "scale"),
        ("off by one: 2^bits levels", lambda x, b: asym_params(x, b, levels=2 ** b), "2^bits - 1"),
        ("missing clamp of the zero point", lambda x, b: asym_params(x, b, clamp=False), "[0, 2^bits - 1]"),
    ]),
    "nb03_ex2": (n03.check_group_fake_quant, group_fq, [
        ("one scale per row", lambda w, b, g: fake_quantize(w, b, granularity="channel"), "ROW"),
        ("groups along the wrong axis (rows)", lambda w, b, g: group_fq(w.T.contiguous(), b, g).T, "reshape"),
        ("off by one group size (2x)", lambda w, b, g: group_fq(w, b, 2 * g), "group"),
    ]),
    "nb03_ex3": (n03.check_outlier_answer, Late(lambda c: n03_best(c["sweep"])), [
        ("per-tensor", "per-tensor", "rel_error_others"),
        ("per-channel", "per-channel", "rel_error_others"),
        ("a granularity that is not in the sweep", "per-group", "one of"),
    ]),
    "nb04_ex1": (n04.check_hessian, lambda x: 2 * x.T @ x / x.shape[0], [
        ("factor 2 missing", lambda x: x.T @ x / x.shape[0], "factor 2"),
        ("transposed: X X^T", lambda x: 2 * x @ x.T / x.shape[0], "(in, in)"),
        ("divided by the width instead of the tokens", lambda x: 2 * x.T @ x / x.shape[1], "division by N"),
    ]),
    "nb04_ex2": (n04.check_column_step, column_step, [
        ("no update at all", lambda W, Hinv, i, spec: W, "quantized value"),
        ("transposed Hinv row (Hinv[i:, i])", lambda W, H, i, s: column_step(W, H, i, s, transposed=True),
         "right of i"),
        ("error not divided by Hinv[i, i]", lambda W, H, i, s: column_step(W, H, i, s, divide=False), "q_i"),
        ("off by one: only columns i+1.. updated", lambda W, H, i, s: column_step(W, H, i, s, quantize_i=False),
         "q_i"),
    ]),
    "nb05_ex1": (n05.check_awq_scale, awq_scale, [
        ("no normalisation", lambda x, r: x.pow(r).clamp(min=1e-4), "normalise"),
        ("normalised by the mean", lambda x, r: awq_scale(x, r, norm="mean"), "sqrt"),
        ("missing clamp", lambda x, r: awq_scale(x, r, clamp=False), "clamp"),
        ("wrong exponent 1 - ratio", lambda x, r: awq_scale(x, r, exponent=1 - r), "x_mean ** ratio"),
    ]),
    "nb05_ex2": (n05.check_fold, lambda g, W, s: (g / s, W * s), [
        ("W / s", lambda g, W, s: (g / s, W / s), "output changed"),
        ("the inverse fold (gamma * s, W / s)", lambda g, W, s: (g * s, W / s), "multiply each input column"),
        ("transposed: rows of W scaled", lambda g, W, s: (g / s, W * s[: W.shape[0], None]), "output changed"),
    ]),
    "nb06_ex1": (n06.check_smoothing_scales,
                 lambda a, W, al: a.clamp(min=1e-5) ** al / W.abs().amax(dim=0).clamp(min=1e-5) ** (1 - al), [
        ("wrong axis: max over input columns", lambda a, W, al: a ** al / W.abs().amax(dim=1) ** (1 - al), "raised"),
        ("alpha on the wrong side", lambda a, W, al: a ** (1 - al) / W.abs().amax(dim=0) ** al, "alpha="),
        ("weight term missing", lambda a, W, al: a ** al, "w_j"),
    ]),
    "nb06_ex2": (n06.check_fold, lambda g, W, s: (g / s, W * s), [
        ("W / s", lambda g, W, s: (g / s, W / s), "multiplied by s"),
        ("gamma * s", lambda g, W, s: (g * s, W / s), "γ2 = γ / s"),
    ]),
    "nb06_ex3": (n06.check_best_alpha, 0.5, [
        ("smallest act_error instead of output_error", 1.0, "output_error"),
        ("largest output_error", 0.0, "smallest"),
        ("off by one row", 0.75, "smallest"),
    ]),
    "nb07_ex1": (n07.check_sylvester, sylvester, [
        ("normalised by 1/sqrt(n)", lambda n: sylvester(n) / math.sqrt(n), "+1 or -1"),
        ("blocks in the wrong order",
         lambda n: sylvester(n, lambda H: torch.cat([torch.cat([H, H], 1), torch.cat([-H, H], 1)], 0)),
         "Sylvester's order"),
        ("off by one doubling", lambda n: sylvester(2 * n), "shape"),
    ]),
    "nb07_ex2": (n07.check_spread, lambda a, n: a / math.sqrt(n), [
        ("divided by n instead of sqrt(n)", lambda a, n: a / n, "1/√n"),
        ("multiplied by sqrt(n)", lambda a, n: a * math.sqrt(n), "1/√n"),
    ]),
    "nb07_ex3": (n07.check_rotate_linear, lambda W, Q: W @ Q, [
        ("transposed rotation W Q^T", lambda W, Q: W @ Q.T, "W2 = W Q"),
        ("weight left unchanged", lambda W, Q: W, "W2 = W Q"),
        ("transpose back forgotten: Q W^T", lambda W, Q: Q @ W.T, "shape"),
    ]),
    "nb08_ex1": (n08.check_zigzag, zigzag, [
        ("plain sort: the largest channels share a block", lambda m, b: torch.argsort(m, descending=True),
         "wrong channels"),
        ("round robin without the zigzag turn", lambda m, b: zigzag(m, b, reverse=False), "wrong channels"),
        ("ascending order", lambda m, b: zigzag(m, b, descending=False), "max|x|"),
    ]),
    "nb08_ex2": (n08.check_first_channel, lambda x, b: int(x.reshape(-1, b).abs().argmax()) % b, [
        ("no |x|: misses the negative spike", lambda x, b: int(x.reshape(-1, b).argmax()) % b, "largest |value|"),
        ("the flat index, not the column", lambda x, b: int(x.abs().argmax()), "COLUMN"),
        ("the row of the spike", lambda x, b: int(x.reshape(-1, b).abs().argmax()) // b, "COLUMN"),
    ]),
    "nb08_ex3": (n08.check_fold_transform, lambda W, T: W @ T, [
        ("transposed transform W T^T", lambda W, T: W @ T.T, "W2 = W T"),
        ("transpose back forgotten: T W^T", lambda W, T: T @ W.T, "raised"),
    ]),
    "nb09_ex1": (n09.check_forward_count, n09.likelihood_forwards, [
        ("no shortcut for one-token answers", lambda n, L, mc, b: n * math.ceil(mc / b), "ONE forward"),
        ("floor instead of ceil", lambda n, L, mc, b: n * (1 if L == 1 else mc // b), "per forward"),
        ("one choice only", lambda n, L, mc, b: 1 if L == 1 else math.ceil(mc / b), "choices"),
    ]),
    "nb09_ex2": (n09.check_mc_samples_for_mmlu, 1, [
        ("the default 128", 128, "single tokens"),
        ("zero samples", 0, "single tokens"),
    ]),
    "nb09_ex3": (n09.check_tokens_per_step, lambda g, s: g / s, [
        ("inverted", lambda g, s: s / g, "exactly once"),
        ("integer division", lambda g, s: g // s, "tokens_per_step(10, 4)"),
    ]),
    "nb10_ex1": (n10.check_drop, lambda a, f: (a / f - 1) * 100, [
        ("difference in points", lambda a, f: a - f, "RELATIVE"),
        ("ratio inverted", lambda a, f: (f / a - 1) * 100 if a else 0.0, "RELATIVE"),
        ("factor 100 missing", lambda a, f: a / f - 1, "* 100"),
    ]),
    "nb10_ex2": (n10.check_awq_misprint, Late(lambda c: awq_drop(FIVE_COLUMNS)), [
        ("six-column mean (ARC-E included)", Late(lambda c: awq_drop(SIX_COLUMNS)), "ARC-E"),
        ("the printed -0.1", -0.1, "ARC-E"),
    ]),
    "nb10_ex3": (n10.check_band, band, [
        ("off by one: -1.0 still negligible", lambda d: "negligible" if -d <= 1 else band(d), "moderate"),
        ("sign flipped: improvements are drops", lambda d: band(-d), "improvement"),
        ("significant from 4% on", lambda d: "significant" if -d >= 4 else band(d), "1-4% moderate"),
    ]),
    "nb11_ex1": (n11.check_sweep_cells, Late(lambda c: cells()), [
        ("one remasking strategy only", Late(lambda c: cells(("low_confidence",))), "missing cells"),
        ("wrong task", Late(lambda c: cells(task="tinybench_general")), "missing cells"),
        ("every cell twice", Late(lambda c: cells(twice=True)), "twice"),
        ("wrong model", Late(lambda c: cells(model="smollm2-135m")), "model"),
    ]),
    "nb11_ex2": (n11.check_memory_ratio, (0.5 + 3 / 128) / 4, [
        ("scale and zero point forgotten", 0.5 / 4, "2-byte scale"),
        ("against BF16 instead of FP32", (0.5 + 3 / 128) / 2, "FP32 costs 4 bytes"),
        ("ratio inverted", 4 / (0.5 + 3 / 128), "FP32 costs 4 bytes"),
    ]),
}
EXTRA = {
    "nb02_ex3": lambda c: (c["down_stats"][0],),
    "nb03_ex3": lambda c: (c["sweep"],),
    "nb06_ex3": lambda c: (ALPHA_TABLE,),
    "nb11_ex1": lambda c: ("tiny", RECIPES, "tinybench_math"),
}
FIXTURES = {"nb02_ex3": "down_stats", "nb03_ex3": "sweep"}


def n03_best(sweep):
    last = sweep[sweep.outlier_x_max == sweep.outlier_x_max.max()]
    return last.sort_values("rel_error_others").iloc[0]["granularity"]


def test_every_checker_has_cases():
    assert sorted(CASES) == sorted(e.exercise_id for e in catalog.exercises())
    for eid, (checker, _, wrong) in CASES.items():
        assert checker.exercise.exercise_id == eid
        assert len(wrong) >= 2, f"{eid}: give at least two plausible wrong answers"


def _call(eid, answer, request):
    ctx = {FIXTURES[eid]: request.getfixturevalue(FIXTURES[eid])} if eid in FIXTURES else {}
    answer = answer.make(ctx) if isinstance(answer, Late) else answer
    return CASES[eid][0](answer, *EXTRA.get(eid, lambda c: ())(ctx))


@pytest.mark.parametrize("eid", sorted(CASES))
def test_the_right_answer_gets_full_points(eid, request):
    checker, right, _ = CASES[eid]
    result = _call(eid, right, request)
    assert result.passed, f"{eid}: {result.message}"
    assert result.points == result.max_points == checker.exercise.points
    assert "correct" in result and result.hint == ""


WRONG = [(eid, i) for eid in sorted(CASES) for i in range(len(CASES[eid][2]))]


@pytest.mark.parametrize("eid,i", WRONG, ids=[f"{e}-{CASES[e][2][i][0]}" for e, i in WRONG])
def test_a_wrong_answer_fails_with_its_hint(eid, i, request):
    checker, _, wrong = CASES[eid]
    mistake, answer, words = wrong[i]
    result = _call(eid, answer, request)
    assert not result.passed, f"{eid}: the mistake '{mistake}' was accepted"
    assert result.points == 0 and result.max_points == checker.exercise.points
    assert words in result.hint, f"{eid} '{mistake}': hint {result.hint!r} lacks {words!r}"


# -- the scoring machinery --------------------------------------------------------------------------------

def test_points_live_next_to_the_checker_and_ids_are_consecutive():
    for number in catalog.NOTEBOOKS:
        found = catalog.exercises(number)
        assert [e.exercise_id for e in found] == [f"nb{number}_ex{k}" for k in range(1, len(found) + 1)]
        assert all(e.points in (1, 2) for e in found)
    assert sum(e.points for e in catalog.exercises()) == 51


def test_results_reach_the_side_channel_file(tmp_path, monkeypatch):
    path = tmp_path / "results.jsonl"
    monkeypatch.setenv(scoring.RESULTS_ENV, str(path))
    before = len(scoring.RESULTS)
    n01.check_quota(quota)
    n01.check_quota(lambda n, s: [n // s] * s)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["exercise_id"], r["passed"], r["points"]) for r in lines] == [("nb01_ex1", True, 2.0),
                                                                           ("nb01_ex1", False, 0.0)]
    assert "unmask all" in lines[1]["message"]
    assert [r.passed for r in scoring.RESULTS[before:]] == [True, False]


def test_a_stub_or_a_crash_is_a_failed_check_not_a_crashed_cell():
    def stub(n, s):
        raise NotImplementedError()

    r = n01.check_quota(stub)
    assert not r and r.error == "NotImplementedError" and "not implemented" in r.hint
    r = n04.check_hessian(lambda x: x @ "oops")
    assert not r and r.error == "TypeError" and "your code raised TypeError" in r.hint


def test_raise_mode_raises_with_the_hint_for_nbgrader(monkeypatch):
    monkeypatch.setenv(scoring.MODE_ENV, "raise")
    with pytest.raises(AssertionError, match="nb01_ex1: .*FIRST"):
        n01.check_quota(lambda n, s: [n // s + (1 if j >= s - n % s else 0) for j in range(s)])
    assert n01.check_quota(quota).passed
    monkeypatch.setenv(scoring.MODE_ENV, "loud")
    with pytest.raises(ValueError, match="DLLMQ_CHECKS='loud': allowed values are report, raise"):
        n01.check_quota(quota)


def test_the_result_shows_pass_or_hint():
    good, bad = n07.check_spread(lambda a, n: a / math.sqrt(n)), n07.check_spread(lambda a, n: a / n)
    assert str(good).startswith("PASSED nb07_ex2 (2/2 points): correct")
    assert str(bad).startswith("FAILED nb07_ex2 (0/2 points): a=100.0")
    assert "#c62828" in bad._repr_html_() and "#2e7d32" in good._repr_html_()
    with pytest.raises(AssertionError, match="1/√n"):
        bad.assert_passed()


def test_bad_declarations_are_refused():
    with pytest.raises(ValueError, match="exercise_id='ex1': expected 'nbNN_exK'"):
        scoring.scored("ex1", points=1)
    with pytest.raises(ValueError, match="points=0"):
        scoring.scored("nb01_ex9", points=0)
    with pytest.raises(ValueError, match="notebook='12': allowed values are 01, 02"):
        catalog.checkers("12")
