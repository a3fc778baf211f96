"""QuantLinear: drop-in for nn.Linear, transforms, activation/output quantizers, metadata, swapping in blocks."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from dllmq.models import get_layout
from dllmq.quant import QuantLinear
from dllmq.quant.qlinear import build_module, module_spec, quantized_linears
from dllmq.quant.quantizer import ActQuantizer, QuantSpec, fake_quantize


class Rotate(nn.Module):
    """x -> x R for a fixed orthogonal R (stand-in for an online Hadamard)."""

    def __init__(self, R):
        super().__init__()
        self.register_buffer("R", R)

    def forward(self, x):
        return x @ self.R


@pytest.fixture
def linear():
    torch.manual_seed(0)
    return nn.Linear(32, 16, bias=True)


def test_fp_quantlinear_is_the_linear(linear):
    q = QuantLinear.from_linear(linear)
    x = torch.randn(3, 5, 32)
    assert torch.equal(q(x), linear(x)) and q.w_bits == 16 and q.a_bits == 16
    assert set(q.state_dict()) == {"weight", "bias"}


def test_rtn_weight_and_metadata(linear):
    spec = QuantSpec(bits=4, granularity="group", group_size=8)
    q = QuantLinear.from_linear(linear, spec, method="rtn")
    assert torch.equal(q.weight, fake_quantize(linear.weight.data, 4, granularity="group", group_size=8))
    assert q.w_scale.shape == q.w_zero.shape == (16, 4)
    x = torch.randn(4, 32)
    assert torch.allclose(q(x), F.linear(x, q.weight, linear.bias))
    text = repr(q)
    assert "int4 asym g8" in text and "method=rtn" in text


def test_input_transform_folded_weight_keeps_output(linear):
    R, _ = torch.linalg.qr(torch.randn(32, 32, dtype=torch.float64))
    R = R.float()
    folded = nn.Linear(32, 16)
    folded.weight.data = linear.weight.data @ R  # W R; input x R -> x R R^T W^T = x W^T
    folded.bias.data = linear.bias.data
    q = QuantLinear.from_linear(folded, input_transform=Rotate(R))
    x = torch.randn(6, 32)
    assert torch.allclose(q(x), linear(x), atol=1e-5)


def test_activation_and_output_quantizers(linear):
    x = torch.randn(2, 7, 32)
    q = QuantLinear.from_linear(linear, act_quantizer=ActQuantizer(4), output_quantizer=ActQuantizer(8, sym=True))
    expected = fake_quantize(F.linear(fake_quantize(x, 4, granularity="token"), linear.weight, linear.bias), 8,
                             sym=True, granularity="token")
    assert torch.allclose(q(x), expected) and q.a_bits == 4


def test_observer_sees_transformed_input_and_is_removable(linear):
    R = torch.eye(32).flip(0)  # a permutation
    q = QuantLinear.from_linear(linear, input_transform=Rotate(R), act_quantizer=ActQuantizer(4))
    seen = []
    handle = q.add_input_observer(seen.append)
    x = torch.randn(3, 32)
    q(x)
    assert torch.equal(seen[0], x @ R)  # after the transform, before activation quantization
    handle.remove()
    q(x)
    assert len(seen) == 1


def test_rewrap_keeps_transform_and_quantizes(linear):
    q = QuantLinear.from_linear(linear, input_transform=Rotate(torch.eye(32)))
    q2 = QuantLinear.from_linear(q, QuantSpec(bits=3))
    assert q2.input_transform is q.input_transform and q2.w_bits == 3


def test_config_round_trip(linear):
    q = QuantLinear.from_linear(linear, QuantSpec(bits=4, granularity="group", group_size=8),
                                act_quantizer=ActQuantizer(8, sym=True), method="rtn")
    q2 = QuantLinear.from_config(q.get_config())
    q2.load_state_dict(q.state_dict())
    x = torch.randn(5, 32)
    assert torch.equal(q(x), q2(x)) and q2.w_spec == q.w_spec and q2.qmeta == {"method": "rtn"}
    assert build_module(module_spec(ActQuantizer(4))).spec.bits == 4


def test_unregistered_transform_cannot_be_saved(linear):
    q = QuantLinear.from_linear(linear, input_transform=Rotate(torch.eye(32)))
    with pytest.raises(TypeError, match="register_module"):
        q.get_config()
    with pytest.raises(KeyError, match="not registered"):
        build_module({"type": "Nope", "config": {}})


def test_bad_inputs(linear):
    with pytest.raises(TypeError, match="linear"):
        QuantLinear.from_linear(nn.Conv1d(3, 3, 1))
    q = QuantLinear.from_linear(linear)
    with pytest.raises(ValueError, match="shape"):
        q.set_weight(torch.zeros(3, 3), None)


@pytest.mark.parametrize("family", ["llada", "dream", "llama"])
def test_swap_inside_every_family(family, request):
    model, _ = request.getfixturevalue(f"tiny_{family}")
    ids = torch.randint(4, 100, (2, 16))
    with torch.no_grad():
        ref = model(input_ids=ids).logits
    layout = get_layout(model)
    for block in layout.blocks:
        for role, lin in block.linears.items():
            block.set(role, QuantLinear.from_linear(lin))
    assert len(quantized_linears(model)) == 7 * len(layout.blocks)
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, ref)
    for block in layout.blocks:
        for role, lin in block.linears.items():
            block.set(role, QuantLinear.from_linear(lin, QuantSpec(bits=8)))
    with torch.no_grad():
        out = model(input_ids=ids).logits
    rel = ((out - ref).pow(2).sum() / ref.pow(2).sum()).item()
    assert 0 < rel < 1e-3
