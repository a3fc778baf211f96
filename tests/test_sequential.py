"""The layer-by-layer engine: block inputs match the model's hidden states, propagation modes, hook hygiene."""
import pytest
import torch

from dllmq.models import get_layout
from dllmq.quant import QuantLinear
from dllmq.quant.quantizer import QuantSpec
from dllmq.quant.sequential import Catcher, HessianAccumulator, capture_block_inputs, run_sequential

FAMILIES = ["llada", "dream", "llama"]


def _hidden_states(model, calib):
    with torch.no_grad():
        return model(input_ids=calib, output_hidden_states=True).hidden_states


@pytest.mark.parametrize("family", FAMILIES)
def test_captured_inputs_are_the_embeddings(family, request):
    model, _ = request.getfixturevalue(f"tiny_{family}")
    calib = torch.randint(4, 100, (5, 12))
    inputs, calls = capture_block_inputs(model, get_layout(model), calib, batch_size=2)
    assert [x.shape[0] for x in inputs] == [2, 2, 1] and len(calls) == 3
    assert torch.allclose(torch.cat(inputs), _hidden_states(model, calib)[0])
    assert not isinstance(get_layout(model).blocks_module[0], Catcher)


@pytest.mark.parametrize("family", FAMILIES)
def test_identity_pass_reproduces_every_block_input(family, request):
    model, _ = request.getfixturevalue(f"tiny_{family}")
    calib = torch.randint(4, 100, (4, 12))
    hidden = _hidden_states(model, calib)
    seen = {}
    run_sequential(model, get_layout(model), calib, lambda ctx: seen.__setitem__(ctx.index, torch.cat(ctx.inputs)),
                   batch_size=3)
    for i in range(len(seen)):
        assert torch.allclose(seen[i], hidden[i], atol=1e-5)


def _quantize_all(ctx):
    for role, lin in ctx.block.linears.items():
        ctx.block.set(role, QuantLinear.from_linear(lin, QuantSpec(bits=2)))


@pytest.mark.parametrize("propagate", ["fp", "quantized"])
def test_propagation_modes(propagate, tiny_llada):
    model, _ = tiny_llada
    calib = torch.randint(4, 100, (4, 12))
    hidden = _hidden_states(model, calib)
    seen = {}

    def process(ctx):
        seen[ctx.index] = torch.cat(ctx.inputs)
        _quantize_all(ctx)

    report = run_sequential(model, get_layout(model), calib, process, propagate=propagate)
    same = torch.allclose(seen[1], hidden[1], atol=1e-6)
    assert same if propagate == "fp" else not same
    assert [b["block"] for b in report.blocks] == [0, 1] and all(b["output_error"] > 0 for b in report.blocks)


def test_hooks_removed_after_an_exception(tiny_dream):
    model, _ = tiny_dream
    layout = get_layout(model)
    layout.blocks[0].set("o", QuantLinear.from_linear(layout.blocks[0].get("o")))
    calib = torch.randint(4, 100, (2, 8))

    def failing(ctx):
        with ctx.observe(["q", "o", "down"], lambda role, x: None):
            ctx.run()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_sequential(model, layout, calib, failing)
    for block in layout.blocks:
        for lin in block.linears.values():
            assert not lin._forward_pre_hooks and not getattr(lin, "_observers", {})
    assert not isinstance(layout.blocks_module[0], Catcher)
    with torch.no_grad():
        model(input_ids=calib)  # the model still works


def test_catcher_removed_when_the_model_fails(tiny_llada):
    model, _ = tiny_llada
    layout = get_layout(model)
    with pytest.raises(Exception):
        capture_block_inputs(model, layout, torch.full((1, 4), 10_000))  # out-of-vocabulary ids
    assert not isinstance(layout.blocks_module[0], Catcher)


def test_hessian_accumulator_is_the_running_mean():
    torch.manual_seed(0)
    xs = [torch.randn(2, 5, 6), torch.randn(3, 5, 6)]
    acc = HessianAccumulator(6, "cpu")
    for x in xs:
        acc.add(x)
    flat = torch.cat([x.reshape(-1, 6) for x in xs])
    assert acc.n == 5 and acc.tokens == 25
    assert torch.allclose(acc.H, 2 / 5 * flat.T @ flat, atol=1e-5)


def test_collect_helpers(tiny_llama):
    model, _ = tiny_llama
    out = {}

    def process(ctx):
        out["inputs"] = ctx.collect_inputs(["q", "down"])
        out["H"] = ctx.collect_hessians(["gate"])
        out["name"] = ctx.name_of("down")

    run_sequential(model, get_layout(model), torch.randint(4, 100, (3, 10)), process, blocks=[1])
    assert out["inputs"]["q"].shape == (30, 64) and out["inputs"]["down"].shape == (30, 128)
    assert out["H"]["gate"].H.shape == (64, 64) and out["name"] == "model.layers.1.mlp.down_proj"


def test_invalid_arguments(tiny_llada):
    model, _ = tiny_llada
    with pytest.raises(ValueError, match="propagate"):
        run_sequential(model, get_layout(model), torch.randint(4, 100, (2, 8)), lambda ctx: None, propagate="both")
    with pytest.raises(ValueError, match="calib"):
        capture_block_inputs(model, get_layout(model), torch.randint(4, 100, (8,)))
