"""Streaming activation statistics: parity with a direct computation, hooks, classification, memory, views."""
import math

import pytest
import torch

from dllmq.activations import (ActivationStats, OutlierThresholds, SiteStats, capture_input, capture_inputs,
                               collect_activations, fake_quant_per_token, mask_ratio_sweep, mask_tokens,
                               per_token_quant_error, plant_outliers, prompt_vs_masked, steps_sweep, views_frame)
from dllmq.activations.histograms import MAG_BINS, hist_count_above, hist_quantile, magnitude_hist, signed_log_hist
from dllmq.activations.stats import RATIO_LEVELS
from dllmq.models import get_layout


def _padded_ids(n=6, T=24, seed=0, vocab=(4, 100)):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(*vocab, (n, T), generator=g)
    mask = torch.ones(n, T, dtype=torch.long)
    for row in range(n):  # left padding of a varying length
        mask[row, : row * 2] = 0
        ids[row, : row * 2] = 0
    return ids, mask


def _raw_inputs(model, data, batch_size):
    """Every block Linear's input for the real tokens, by plain hooks (the direct reference)."""
    layout = get_layout(model)
    store, handles = {}, []
    for b in layout.blocks:
        for role, lin in b.linears.items():
            def hook(mod, args, key=(b.index, role)):
                store.setdefault(key, []).append(args[0].detach().clone())
            handles.append(lin.register_forward_pre_hook(hook))
    ids, mask = data
    try:
        with torch.no_grad():
            for lo in range(0, ids.shape[0], batch_size):
                model(ids[lo:lo + batch_size], attention_mask=mask[lo:lo + batch_size])
    finally:
        for h in handles:
            h.remove()
    valid = mask.bool()
    return {k: torch.cat(v)[valid] for k, v in store.items()}  # (N_real, C)


def _no_hooks(model):
    return all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())


def test_statistics_equal_direct_computation(tiny_llada):
    model, _ = tiny_llada
    ids, mask = _padded_ids()
    stats = collect_activations(model, {"input_ids": ids, "attention_mask": mask}, batch_size=4, topk=8,
                                progress=False)
    raw = _raw_inputs(model, (ids, mask), batch_size=4)
    n_real = int(mask.sum())
    sample_of = torch.arange(ids.shape[0])[:, None].expand_as(ids)[mask.bool()]
    pos_of = torch.arange(ids.shape[1])[None].expand_as(ids)[mask.bool()]
    for (layer, role), x in raw.items():
        site = stats[layer, role]
        assert site.roles[0] in ("q", "o", "gate", "down") and role in site.roles  # shared inputs
        a = x.abs()
        assert site.n_tokens == n_real
        torch.testing.assert_close(site.ch_absmax, a.amax(0))
        torch.testing.assert_close(site.ch_absmean, a.mean(0), rtol=1e-5, atol=1e-7)
        assert site.absmax == pytest.approx(float(a.max()))
        # moments: kurtosis over every entry
        d = (x.double() - x.double().mean())
        kurt = float((d ** 4).mean() / (d ** 2).mean() ** 2)
        assert site.kurtosis == pytest.approx(kurt, rel=1e-4)
        assert site.mean == pytest.approx(float(x.double().mean()), abs=1e-6)
        # per-token quantization error (mean of relative MSE, pooled, bulk)
        for bits in (8, 4):
            rel = per_token_quant_error(x, bits)
            assert site.quant_rel_mse(bits) == pytest.approx(float(rel.mean()), rel=1e-4)
            pooled = float(((fake_quant_per_token(x, bits) - x) ** 2).sum() / (x ** 2).sum())
            assert site.quant_rel_mse(bits, pooled=True) == pytest.approx(pooled, rel=1e-4)
        # "large on this token" counts per channel
        ratio = a / a.mean(-1, keepdim=True)
        for level in RATIO_LEVELS:
            torch.testing.assert_close(site.large_fraction(level), (ratio >= level).float().mean(0))
        # top tokens and top entries (values and where they are)
        tok_max = a.amax(-1)
        top = tok_max.topk(8)
        rows = site.top_token_rows()
        assert [r["score"] for r in rows] == pytest.approx(top.values.tolist())
        assert [(r["sample"], r["position"]) for r in rows] == list(zip(sample_of[top.indices].tolist(),
                                                                           pos_of[top.indices].tolist()))
        assert [r["token_id"] for r in rows] == ids[mask.bool()][top.indices].tolist()
        bulk = per_token_quant_error(x[top.indices], 4, bulk=True)
        assert [r["q4_bulk_rel_mse"] for r in rows] == pytest.approx(bulk.tolist(), rel=1e-5)
        assert [r["q8_rel_mse"] for r in rows] == pytest.approx(per_token_quant_error(x[top.indices], 8).tolist(),
                                                                rel=1e-4)
        ent = a.reshape(-1).topk(8)
        erows = site.top_entry_rows()
        assert [e["score"] for e in erows] == pytest.approx(ent.values.tolist())
        assert [e["channel"] for e in erows] == (ent.indices % x.shape[1]).tolist()
        assert [e["value"] for e in erows] == pytest.approx(x.reshape(-1)[ent.indices].tolist())
        # histograms: every entry counted once; the |x| median within one bin (< 3.2%)
        assert int(site.value_log_hist.sum()) == x.numel()
        assert int(site.tok_absmax_hist.sum()) == n_real
        assert site.median_abs == pytest.approx(float(a.median()), rel=0.032)
        assert site.quantile_abs(0.99) == pytest.approx(float(a.reshape(-1).quantile(0.99)), rel=0.032)


def test_streaming_moments_merge_batches_with_different_means():
    torch.manual_seed(0)
    site = SiteStats(0, ("q",), topk=4)
    parts = [torch.randn(50, 16) * s + m for s, m in ((1, 0), (3, 5), (0.5, -2), (10, 1))]
    for x in parts:
        n = x.shape[0]
        site.update(x, torch.arange(n), torch.arange(n))
    allx = torch.cat(parts).double()
    d = allx - allx.mean()
    assert site.mean == pytest.approx(float(allx.mean()), rel=1e-6)
    assert site.var == pytest.approx(float((d ** 2).mean()), rel=1e-6)
    assert site.kurtosis == pytest.approx(float((d ** 4).mean() / (d ** 2).mean() ** 2), rel=1e-6)


def test_fake_quant_matches_definition_and_quantizer_module():
    from dllmq.quant.quantizer import fake_quantize
    torch.manual_seed(0)
    x = torch.randn(32, 64) * 3 + 0.5
    for bits in (8, 4, 3):
        y = fake_quant_per_token(x, bits)
        ref = fake_quantize(x, bits, sym=False, granularity="token", include_zero=True)
        torch.testing.assert_close(y, ref)
        lo, hi = x.amin(-1, keepdim=True).clamp(max=0), x.amax(-1, keepdim=True).clamp(min=0)
        scale = (hi - lo) / (2 ** bits - 1)
        assert bool(((y - x).abs() <= scale / 2 + 1e-5).all())  # round to nearest inside the range
        assert int(torch.unique(y[0]).numel()) <= 2 ** bits
    with pytest.raises(ValueError, match="bits"):
        fake_quant_per_token(x, 0)


def test_bulk_error_explodes_on_a_massive_token():
    torch.manual_seed(0)
    x = torch.randn(4, 256)
    x[2, 17] = 3000.0  # a massive entry
    whole, bulk = per_token_quant_error(x, 4), per_token_quant_error(x, 4, bulk=True)
    assert bulk[2] > 0.9  # every bulk entry rounds to zero
    assert float(bulk[[0, 1, 3]].max()) < 0.05
    assert whole[2] < 0.05  # the whole-token error hides it: the huge entry is kept


def test_hooks_removed_after_exception(tiny_llada):
    model, _ = tiny_llada
    bad = torch.full((2, 8), 10_000)  # out of the vocabulary: the embedding raises
    with pytest.raises(IndexError):
        collect_activations(model, bad, progress=False)
    assert _no_hooks(model)
    with pytest.raises(IndexError):
        capture_input(model, bad, 0, "down")
    assert _no_hooks(model)
    stats = collect_activations(model, torch.randint(4, 100, (2, 8)), progress=False)  # still usable
    assert stats.n_tokens == 16 and _no_hooks(model)


def test_planted_outliers_are_classified():
    torch.manual_seed(0)
    x = plant_outliers(torch.randn(512, 256), normal_channel=7, normal_value=30.0, massive_token=100,
                       massive_channel=42, massive_value=5000.0)
    site = SiteStats(3, ("down",), topk=16)
    for lo in range(0, 512, 128):  # streamed in 4 batches
        site.update(x[lo:lo + 128], torch.zeros(128, dtype=torch.long), torch.arange(lo, lo + 128))
    stats = ActivationStats(sites={(3, "down"): site}, aliases={(3, "down"): (3, "down")}, n_layers=4, family="llada")
    row = stats.outliers().iloc[0]
    assert row["kind"] == "massive+normal"
    assert row["normal_channels"] == [7] and row["n_normal_channels"] == 1
    assert row["massive_channels"] == [42] and row["n_massive_tokens"] == 1 and row["massive_count_exact"]
    assert row["massive_max"] == pytest.approx(5000.0)
    assert row["massive_tokens"] == ["s0:p100"]
    # thresholds are adjustable: a bar above the planted value finds no massive outlier
    assert stats.outliers(massive_abs=10_000)["kind"].iloc[0] == "normal"
    assert stats.outliers(normal_ratio=100)["kind"].iloc[0] == "massive"
    with pytest.raises(ValueError, match="normal_token_ratio"):
        OutlierThresholds(normal_token_ratio=3.0)
    with pytest.raises(ValueError, match="unknown threshold"):
        stats.outliers(massive=1)


def test_planted_outliers_in_a_model_forward(tiny_llada):
    """A massive entry and a normal channel planted into the real down-projection input of block 1."""
    model, _ = tiny_llada
    down = get_layout(model).blocks[1].get("down")

    def plant(mod, args):
        x = args[0].clone()
        x[..., 5] = 40.0  # every token of channel 5
        x[1, 9, 77] = 4000.0  # sample 1, position 9
        return (x,)

    handle = down.register_forward_pre_hook(plant)  # registered first: runs before the recorder's hook
    try:
        stats = collect_activations(model, torch.randint(4, 100, (3, 32)), roles=("down",), progress=False)
    finally:
        handle.remove()
    table = stats.outliers().set_index("layer")
    assert table.loc[1, "kind"] == "massive+normal"
    assert table.loc[1, "massive_channels"] == [77] and table.loc[1, "massive_tokens"] == ["s1:p9"]
    assert table.loc[1, "normal_channels"] == [5]
    assert table.loc[0, "kind"] == "none"


def test_memory_is_flat_in_the_number_of_tokens(tiny_llada):
    model, _ = tiny_llada
    small = collect_activations(model, torch.randint(4, 100, (4, 32)), progress=False)
    big = collect_activations(model, torch.randint(4, 100, (32, 64)), progress=False)
    assert big.n_tokens == 16 * small.n_tokens
    assert big.nbytes() == small.nbytes() > 0
    for key, site in small.sites.items():
        shapes_small = {k: tuple(v.shape) for k, v in site.tensors().items()}
        shapes_big = {k: tuple(v.shape) for k, v in big.sites[key].tensors().items()}
        assert shapes_small == shapes_big


def test_data_forms_give_the_same_statistics(tiny_llada):
    model, tok = tiny_llada
    texts = ["hello world", "a longer sentence here", "hi"]
    enc = tok(texts, return_tensors="pt", padding=True)
    ref = collect_activations(model, texts, tok=tok, batch_size=2, progress=False)
    forms = [
        {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]},
        [(enc["input_ids"][:2], enc["attention_mask"][:2]), (enc["input_ids"][2:], enc["attention_mask"][2:])],
        [{"input_ids": enc["input_ids"][i][enc["attention_mask"][i].bool()]} for i in range(3)],  # unpadded rows
    ]
    for data in forms:
        other = collect_activations(model, data, batch_size=2, progress=False)
        assert other.n_tokens == ref.n_tokens == int(enc["attention_mask"].sum())
        for key in ref.sites:
            assert other.sites[key].absmax == pytest.approx(ref.sites[key].absmax, rel=1e-4)
    with pytest.raises(ValueError, match="tok="):
        collect_activations(model, texts, progress=False)
    with pytest.raises(TypeError, match="list of strings"):
        collect_activations(model, "one string", tok=tok, progress=False)
    with pytest.raises(ValueError, match="roles"):
        collect_activations(model, enc["input_ids"], roles=("ff_out",), progress=False)
    with pytest.raises(ValueError, match="layers"):
        collect_activations(model, enc["input_ids"], layers=[5], progress=False)
    with pytest.raises(ValueError, match="topk"):
        collect_activations(model, enc["input_ids"], topk=0, progress=False)


def test_role_subsets_layers_and_shared_inputs(tiny_dream):
    model, _ = tiny_dream
    stats = collect_activations(model, torch.randint(4, 100, (2, 16)), roles=("k", "up", "down"), layers=[-1],
                                progress=False)
    assert stats.layers == [1] and stats.roles == ["k", "up", "down"]
    assert {site.roles for site in stats.sites.values()} == {("k",), ("up",), ("down",)}
    full = collect_activations(model, torch.randint(4, 100, (2, 16)), progress=False)
    assert full[0, "q"] is full[0, "k"] is full[0, "v"] and full[0, "gate"] is full[0, "up"]
    assert len(full.frame()) == 2 * 4  # one row per distinct input
    with pytest.raises(KeyError):
        stats[0, "k"]


def test_llama_family_and_linear_hist(tiny_llama):
    model, _ = tiny_llama
    stats = collect_activations(model, torch.randint(4, 100, (2, 16)), hist_range=(-2.0, 2.0), hist_bins=40,
                                progress=False)
    site = stats[1, "down"]
    assert site.value_hist.shape == (42,) and int(site.value_hist.sum()) == 32 * site.channels
    assert stats.family == "llama"


def test_histogram_helpers():
    x = torch.tensor([-3.0, -0.5, 0.0, 0.25, 1.0, 2.0, 100.0])
    h = signed_log_hist(x)
    assert h.shape == (2 * MAG_BINS,) and int(h.sum()) == 7
    mag = magnitude_hist(h)
    assert hist_count_above(mag, 1.5) == pytest.approx(3.0, abs=0.05)
    assert hist_count_above(mag, 1e6) == 0.0
    assert hist_quantile(mag, 0.5) == pytest.approx(1.0, rel=0.032)


def test_mask_tokens_exact_share():
    ids, mask = _padded_ids(n=4, T=20)
    out = mask_tokens(ids, 0.5, 3, mask, torch.Generator().manual_seed(0))
    for row in range(4):
        n_real = int(mask[row].sum())
        assert int((out[row] == 3).sum()) == round(0.5 * n_real)
        assert bool((out[row][~mask[row].bool()] == 0).all())  # padding untouched
    with pytest.raises(ValueError, match="ratio"):
        mask_tokens(ids, 1.5, 3)


def test_mask_ratio_sweep_groups(tiny_llada):
    model, _ = tiny_llada
    ids = torch.randint(4, 100, (4, 20))
    sweep = mask_ratio_sweep(model, ids, ratios=(0.0, 0.5, 1.0), roles=("down",), progress=False)
    assert sweep[0.0]["masked"].n_tokens == 0 and sweep[0.0]["clean"].n_tokens == 80
    assert sweep[0.5]["masked"].n_tokens == 40 and sweep[0.5]["clean"].n_tokens == 40
    assert sweep[1.0]["clean"].n_tokens == 0 and sweep[1.0]["all"].n_tokens == 80
    frame = views_frame(sweep, key="ratio")
    assert set(frame["group"]) == {"all", "masked", "clean"} and set(frame["ratio"]) == {0.0, 0.5, 1.0}
    # a fully masked input: every token identical, so every token has the same absmax
    site = sweep[1.0]["all"][1, "down"]
    scores = [r["score"] for r in site.top_token_rows()]
    assert max(scores) == pytest.approx(min(scores), rel=1e-4)


def test_mask_views_need_a_diffusion_model(tiny_llama):
    model, tok = tiny_llama
    with pytest.raises(ValueError, match="mask_token_id"):
        mask_ratio_sweep(model, torch.randint(4, 100, (2, 8)), progress=False)


def test_prompt_vs_masked_counts(tiny_llada):
    model, tok = tiny_llada
    prompts = ["What is two plus two?", "Hi"]
    views = prompt_vs_masked(model, tok, prompts, gen_length=12, roles=("q", "down"), progress=False)
    n_prompt = sum(len(tok(p)["input_ids"]) for p in prompts)
    assert views["prompt"].n_tokens == n_prompt
    assert views["masked"].n_tokens == 2 * 12
    frame = views_frame(views)
    assert set(frame["group"]) == {"prompt", "masked"}
    assert set(frame.loc[frame["group"] == "masked", "n_tokens"]) == {24}


def test_steps_sweep_tracks_masked_and_decoded(tiny_llada):
    model, tok = tiny_llada
    steps, gen = steps_sweep(model, tok, ["abc", "hello"], steps=8, gen_length=8, block_length=8, every=2,
                             roles=("down",))
    assert sorted(steps) == [0, 2, 4, 6]
    for step, groups in steps.items():
        masked = groups["masked"].n_tokens
        decoded = groups["decoded"].n_tokens
        assert masked + decoded == 2 * 8
        assert decoded == 2 * step  # one token per row per step (steps == gen_length)
    assert gen.ids.shape == (2, 8)
    assert _no_hooks(model)


def test_capture_inputs_shapes_and_padding(tiny_llada):
    model, _ = tiny_llada
    ids, mask = _padded_ids(n=5, T=16)
    caps = capture_inputs(model, {"input_ids": ids, "attention_mask": mask}, [(0, "q"), (1, "down")], max_samples=3,
                          max_tokens=10, batch_size=2)
    assert caps[(0, "q")].x.shape == (3, 10, 64) and caps[(1, "down")].x.shape == (3, 10, 128)
    assert caps[(1, "down")].tokens(1).shape == (int(mask[1, :10].sum()), 128)  # batch [0, 1] starts at 0
    assert caps[(1, "down")].tokens(2).shape == (10, 128)  # batch [2] skips its 4 padding positions
    raw = _raw_inputs(model, (ids[:1], mask[:1]), batch_size=1)[(1, "down")]
    torch.testing.assert_close(caps[(1, "down")].tokens(0), raw[:10], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="role"):
        capture_inputs(model, ids, [(0, "ff_out")])


def test_explorer_widgets_headless(tiny_llada):
    from dllmq.lab.n02_outliers import explore_view
    from dllmq.viz.explorer import OutlierExplorer
    model, tok = tiny_llada
    ex = OutlierExplorer(model, ["the quick brown fox jumps over the lazy dog"], tok=tok, max_tokens=32)
    assert ex.last["layer"] == 1 and ex.last["role"] == "down" and ex.last["n_masked"] == 0
    ex.layer.value = 0
    ex.role.value = "q"
    ex.ratio.value = 0.5
    assert (ex.last["layer"], ex.last["role"], ex.last["ratio"]) == (0, "q", 0.5)
    assert ex.last["n_masked"] == round(0.5 * 32)
    assert len(ex.last["figure"].axes) == 2
    view = explore_view(model, (torch.randint(4, 100, (1, 12)), None), 1, "down")
    assert "figure" not in view and view["absmax"] > 0


@pytest.mark.slow
def test_smollm2_massive_outlier_at_a_down_proj_input(smollm2):
    model, tok = smollm2
    from dllmq.calibration import get_calibration
    ids = get_calibration("text", tok, n_samples=2, seq_len=48)
    stats = collect_activations(model, ids, roles=("q", "down"), batch_size=4, progress=False)
    table = stats.outliers(tok=tok)
    massive = table[table["kind"].str.contains("massive")]
    assert len(massive) > 0 and set(massive["role"]) == {"down"}  # only at down_proj inputs
    top = massive.loc[massive["massive_max"].idxmax()]
    assert top["massive_max"] >= 100 and top["massive_max"] >= 1000 * top["median_abs"]
    # the massive token is quantized very badly at 4 bits per token (its bulk rounds to zero)
    assert top["q4_bulk_rel_mse_top_token"] > 0.5 > top["q4_rel_mse"]
    assert math.isfinite(top["kurtosis"]) and top["kurtosis"] > 100


def test_exercise_checkers_accept_solutions_and_reject_mistakes(tiny_llada):
    from dllmq.exercises import n02_outliers as ex
    assert "correct" in ex.check_fake_quant(fake_quant_per_token)

    def symmetric(x, bits):  # a common mistake: symmetric instead of asymmetric
        s = x.abs().amax(-1, keepdim=True) / (2 ** (bits - 1) - 1)
        return torch.round(x / s) * s

    with pytest.raises(AssertionError, match="scale"):
        ex.check_fake_quant(symmetric).assert_passed()

    def is_massive(x):
        a = x.abs()
        return bool(a.max() >= 100 and a.max() >= 1000 * a.median())

    assert "correct" in ex.check_is_massive(is_massive)
    with pytest.raises(AssertionError, match="1000"):
        ex.check_is_massive(lambda x: bool(x.abs().max() >= 100)).assert_passed()
    model, _ = tiny_llada
    stats = collect_activations(model, torch.randint(4, 100, (2, 16)), roles=("down",), progress=False)
    best = int(stats.frame().sort_values("absmax").iloc[-1]["layer"])
    assert "correct" in ex.check_massive_layer(best, stats)
    with pytest.raises(AssertionError, match="absmax"):
        ex.check_massive_layer(1 - best, stats).assert_passed()


def test_streaming_token_error_equals_the_one_quantizer():
    """stats.py's one-pass per-token squared error is the error of the kit's quantizer, not a second grid."""
    from dllmq.activations.token_quant import _token_quant_sse
    torch.manual_seed(1)
    x = torch.randn(16, 48) * 2 + 0.2
    x[3, 5] = 400.0
    lo, hi = x.amin(-1, keepdim=True).clamp(max=0), x.amax(-1, keepdim=True).clamp(min=0)
    for bits in (8, 4):
        want = (fake_quant_per_token(x, bits) - x).pow(2).sum(-1)
        torch.testing.assert_close(_token_quant_sse(x, lo, hi, bits), want, rtol=1e-4, atol=1e-6)
