"""AWQ's scale search against llm-awq (`auto_scale.py` `_search_module_scale`), restated on the same tensors.

llm-awq scores the q/k/v scales on the output of the attention module (`module2inspect=self_attn`) and the
gate/up scales on the output of the MLP (`module2inspect=mlp`), each fed the cached full-precision input of
the group: for ratio r = 0, 1/20, ..., 19/20, s = clamp(mean|x|^r, 1e-4) / sqrt(max · min), the group's
weights become Q(W·s)/s with the asymmetric g-group quantizer (`pseudo_quantize_tensor`), and the loss is the
mean squared difference of the module's output. dllmq's default (loss="module") must give the same losses.
"""
import pytest
import torch
import torch.nn.functional as F

from dllmq.models import get_layout
from dllmq.models.common import apply_rope, bidirectional_attention, rope_cos_sin
from dllmq.quant import Recipe, quantize
from dllmq.quant import awq
from dllmq.quant.sequential import run_sequential

G = 32
BITS = 3


def _pseudo_quantize(w, bits=BITS, group=G):
    """llm-awq's asymmetric group quantizer (zero_point=True), in our words."""
    shape = w.shape
    w = w.reshape(-1, group)
    hi, lo = w.amax(dim=1, keepdim=True), w.amin(dim=1, keepdim=True)
    qmax = 2 ** bits - 1
    scale = (hi - lo).clamp(min=1e-5) / qmax
    zero = (-torch.round(lo / scale)).clamp(0, qmax)
    return ((torch.clamp(torch.round(w / scale) + zero, 0, qmax) - zero) * scale).reshape(shape)


def _attention_module(blk, h):
    """LLaDA's attention sub-module on normed input h (B, T, d): q/k/v, RoPE, bidirectional SDPA, attn_out."""
    B, T, _ = h.shape
    nh, nkv, hd = blk.n_heads, blk.n_kv_heads, blk.head_dim
    q = blk.q_proj(h).view(B, T, nh, hd).transpose(1, 2)
    k = blk.k_proj(h).view(B, T, nkv, hd).transpose(1, 2)
    v = blk.v_proj(h).view(B, T, nkv, hd).transpose(1, 2)
    cos, sin = rope_cos_sin(torch.arange(T).expand(B, T), hd, blk.rope_theta)
    q, k = apply_rope(q, k, cos, sin, full_precision=True)
    return blk.attn_out(bidirectional_attention(q, k, v, None).transpose(1, 2).reshape(B, T, -1))


def _mlp_module(blk, h):
    return blk.ff_out(F.silu(blk.ff_proj(h)) * blk.up_proj(h))


@torch.no_grad()
def _llm_awq_losses(module, linears, x, n_grid=20):
    org = module(x)
    x_mean = x.abs().reshape(-1, x.shape[-1]).mean(0)
    saved = [fc.weight.data.clone() for fc in linears]
    losses = []
    for k in range(n_grid):
        s = x_mean.pow(k / n_grid).clamp(min=1e-4)
        s = s / (s.max() * s.min()).sqrt()
        for fc, w in zip(linears, saved):
            fc.weight.data = _pseudo_quantize(w * s) / s
        losses.append(float((org - module(x)).float().pow(2).mean()))
        for fc, w in zip(linears, saved):
            fc.weight.data = w.clone()
    return losses


def _block0_search(model, loss):
    """dllmq's and the restated losses of the two norm groups of block 0 (nothing folded in between)."""
    spec = Recipe.parse(f"awq:w{BITS}a16g{G}").weight_spec()
    out = {}

    def process(ctx):
        seen = {}
        with ctx.observe(["q", "gate"], lambda r, x: seen.setdefault(r, []).append(x.detach().clone())):
            ctx.run()
        groups, _ = awq.scaling_groups(ctx.block, loss)
        blk = ctx.module
        for group, module in ((groups[0], _attention_module), (groups[2], _mlp_module)):
            role = group.roles[0]
            x = torch.cat(seen[role])  # (B, T, d), one calibration batch here
            _, ratio, losses = awq.search_scale(ctx, group, x.reshape(-1, x.shape[-1]), spec)
            lins = [getattr(blk, n) for n in (("q_proj", "k_proj", "v_proj") if role == "q" else ("ff_proj", "up_proj"))]
            out[group.prev] = (losses, ratio, _llm_awq_losses(lambda h: module(blk, h), lins, x))

    run_sequential(model, get_layout(model), torch.randint(4, 100, (4, 24), generator=torch.Generator().manual_seed(0)),
                   process, propagate="fp", blocks=[0], measure_block_error=False, batch_size=8)
    return out


def test_module_objective_is_llm_awqs(tiny_llada):
    model, _ = tiny_llada
    for prev, (ours, ratio, ref) in _block0_search(model, "module").items():
        assert torch.allclose(torch.tensor(ours), torch.tensor(ref), rtol=1e-4, atol=1e-12), prev
        assert ratio == min(range(20), key=ref.__getitem__) / 20, prev


def test_block_objective_is_kept_as_an_option_and_differs(tiny_llada):
    """loss="block" scores q/k/v on the block output (the attention error seen through the MLP): another
    objective. For gate/up the two coincide: the MLP output is the last term the block adds."""
    model, _ = tiny_llada
    found = _block0_search(model, "block")
    ours, _, ref = found["attn_norm"]
    assert len(ours) == 20 and not torch.allclose(torch.tensor(ours), torch.tensor(ref), rtol=1e-2)
    ours, _, ref = found["mlp_norm"]
    assert torch.allclose(torch.tensor(ours), torch.tensor(ref), rtol=1e-4, atol=1e-12)
    assert Recipe.parse("awq:w4a16g128").knob("loss") == "module"
    assert str(Recipe.parse("awq:w4a16g128:loss=block")) == "awq:w4a16g128:loss=block"
    with pytest.raises(ValueError, match="loss"):
        quantize(model, "awq:w4a16g32:loss=model", torch.randint(4, 100, (2, 16)))
