"""Recipe: string round-trip, the paper's presets (paper vs code variants) and clear errors."""
import pytest

from dllmq.quant import Recipe
from dllmq.quant.quantizer import ActQuantizer
from dllmq.quant.presets import PAPER_METHOD_SETTINGS
from dllmq.quant.recipe import CalibSpec, all_paper_recipes


@pytest.mark.parametrize("text", [
    "rtn:w4a16g128", "gptq:w4a16g128", "gptq:w3a16g128:sym,conv=gptq", "awq:w4a16", "awq:w3a16g64:calib=text,n=16,len=256",
    "gptq:w4a16g128:damp=0.05,act_order,static_groups", "gptq:w4a16g128:true_sequential=false",
    "quarot:w4a4:kv=4", "duquant:w4a4:q=4,kv=4", "smoothquant:w8a8:alpha=0.85,mask=uniform",
    "rtn:w8a8:a_sym,wclip=mse,aclip=0.9,seed=3,mask=0.5",
])
def test_canonical_strings_round_trip(text):
    recipe = Recipe.parse(text)
    assert str(recipe) == text
    assert Recipe.parse(str(recipe)) == recipe
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    assert hash(recipe) == hash(Recipe.parse(text))


def test_parse_fields():
    r = Recipe.parse("gptq:w3a16g128:act_order,damp=0.05,block_size=64,calib=tiny,n=32,len=256")
    assert (r.method, r.w_bits, r.a_bits, r.group_size, r.w_sym) == ("gptq", 3, 16, 128, False)
    assert r.knob("act_order") is True and r.knob("damp") == 0.05 and r.knob("block_size") == 64
    assert r.calib == CalibSpec("tiny", 32, 256, 0)
    assert Recipe.parse("quarot:w4a4kv4").kv_bits == 4  # QuaRot's W4A4KV4 notation is accepted
    assert Recipe.parse(r) is r
    assert r.weight_only and not Recipe.parse("rtn:w4a4").weight_only


def test_quantizers_from_recipe():
    r = Recipe.parse("rtn:w4a8g64:sym,a_sym,aclip=0.9")
    spec = r.weight_spec()
    assert (spec.bits, spec.sym, spec.granularity, spec.group_size) == (4, True, "group", 64)
    aq = r.act_quantizer()
    assert isinstance(aq, ActQuantizer) and aq.spec.bits == 8 and aq.spec.sym and aq.spec.clip_ratio == 0.9
    assert Recipe.parse("gptq:w4a16").act_quantizer() is None
    assert Recipe.parse("gptq:w4a16").weight_spec().granularity == "channel"


def test_paper_presets_weight_only():
    g = Recipe.paper("gptq", "w4a16g128")
    assert str(g) == "gptq:w4a16g128"
    assert (g.w_bits, g.group_size, g.w_sym, g.a_bits) == (4, 128, False, 16)  # paper: asymmetric
    assert g.calib == CalibSpec("wikitext2", 128, 2048, 0)
    assert g.knob("damp") == 0.01 and g.knob("act_order") is False and g.knob("true_sequential") is True
    code = Recipe.paper("gptq", "w4a16g128", variant="code")
    assert code.w_sym is True and code.sym_convention == "gptq"  # AutoGPTQ default sym=True
    a = Recipe.paper("awq", "w3a16g128")
    assert (a.w_bits, a.group_size, a.w_sym) == (3, 128, False)
    assert a.calib == CalibSpec("pileval", 128, 512, 42)
    assert a.knob("n_grid") == 20 and a.knob("max_shrink") == 0.5 and a.knob("clip_tokens") == 512


def test_paper_presets_weight_activation():
    sq = Recipe.paper("smoothquant", "w8a8")
    assert (sq.w_bits, sq.a_bits, sq.w_sym, sq.a_sym, sq.q_bits, sq.kv_bits) == (8, 8, False, False, 8, 8)
    assert sq.knob("alpha") == 0.5 and sq.group_size is None
    qr = Recipe.paper("quarot", "w4a4")
    assert (qr.w_sym, qr.a_sym, qr.w_clip, qr.q_bits, qr.kv_bits) == (True, True, "mse", 16, 4)
    assert qr.knob("weights") == "gptq" and qr.calib.seq_len == 2048
    assert Recipe.paper("quarot", "w4a4", variant="code").calib.seq_len == 4096
    dq = Recipe.paper("duquant", "w4a4")
    assert (dq.w_clip, dq.a_clip, dq.q_bits, dq.kv_bits) == (0.8, 0.9, 4, 4)
    assert dq.knob("alpha") == 0.5 and dq.knob("block_size") == 128 and dq.knob("rotation_steps") == 256
    assert dq.knob("permutation_times") == 1


def test_every_paper_preset_builds():
    recipes = all_paper_recipes()
    assert len(recipes) == sum(len(v) for m, v in PAPER_METHOD_SETTINGS.items() if m != "rtn")
    for method, settings in PAPER_METHOD_SETTINGS.items():
        for setting in settings:
            for variant in ("paper", "code"):
                r = Recipe.paper(method, setting, variant)
                assert r.method == method and r.setting == setting
                assert Recipe.parse(str(r)) == r


@pytest.mark.parametrize("call, match", [
    (lambda: Recipe.parse("foo:w4a16"), "method"),
    (lambda: Recipe.parse("gptq"), "method:setting"),
    (lambda: Recipe.parse("gptq:w4"), "setting"),
    (lambda: Recipe.parse("gptq:w4a16g128:bogus"), "knob 'bogus'"),
    (lambda: Recipe.parse("gptq:w4a16g128:act_order=maybe"), "act_order"),
    (lambda: Recipe.parse("gptq:w4a16g128:damp=abc"), "damp"),
    (lambda: Recipe.parse("gptq:w4a16g128:block_size=1.5"), "block_size"),
    (lambda: Recipe.parse("gptq:w4a8"), "a_bits"),
    (lambda: Recipe.parse("awq:w16a16"), "w_bits"),
    (lambda: Recipe.parse("smoothquant:w8a16"), "a_bits"),
    (lambda: Recipe.parse("rtn:w1a16"), "w_bits"),
    (lambda: Recipe.parse("rtn:w4a17"), "a_bits"),
    (lambda: Recipe.parse("rtn:w4a16g0"), "group_size"),
    (lambda: Recipe.parse("rtn:w4a16:wclip=1.5"), "w_clip"),
    (lambda: Recipe.parse("rtn:w4a16:aclip=0"), "a_clip"),
    (lambda: Recipe.parse("rtn:w4a16:conv=odd"), "sym_convention"),
    (lambda: Recipe.parse("rtn:w4a16:kv=1"), "kv_bits"),
    (lambda: Recipe.parse("rtn:w4a16:calib=books"), "source"),
    (lambda: Recipe.parse("rtn:w4a16:n=0"), "n_samples"),
    (lambda: Recipe.parse("rtn:w4a16:mask=2"), "mask_ratio"),
    (lambda: Recipe.parse("rtn:w4a16:,"), "empty option"),
    (lambda: Recipe.paper("gptq", "w8a8"), "only at"),
    (lambda: Recipe.paper("awq", "w4a16g128", variant="repo"), "variant"),
    (lambda: Recipe("quarot", a_bits=4, knobs={"weights": 3}), "weights"),
    (lambda: Recipe("gptq", knobs={"damp": "x"}), "damp"),
    (lambda: Recipe("gptq", knobs=[1, 2]), "knobs"),
    (lambda: Recipe("gptq", w_sym="yes"), "w_sym"),
    (lambda: Recipe.parse(42), "recipe"),
])
def test_invalid_recipes_get_clear_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_non_canonical_order_parses_to_the_same_recipe():
    a = Recipe.parse("gptq:w4a16g128:static_groups,act_order,damp=0.05")
    assert a == Recipe.parse(str(a)) and str(a) == "gptq:w4a16g128:damp=0.05,act_order,static_groups"


def test_with_revalidates():
    r = Recipe.parse("gptq:w4a16g128")
    assert r.with_(w_bits=3).w_bits == 3
    with pytest.raises(ValueError, match="a_bits"):
        r.with_(a_bits=4)
