"""Weight rewrites (scale, rotate, fold norms) leave the full-precision function unchanged."""
import torch
import torch.nn as nn

from dllmq.models import build_random_model, get_layout
from dllmq.quant.fold import (fold_norm, fuse_norms, rotate_embedding, rotate_input, rotate_output, scale_input,
                              scale_norm, scale_output, untie_head)
from dllmq.quant.report import relative_l2_error
from dllmq.quant.hadamard import hadamard_matrix, random_orthogonal_matrix


def _ids(vocab=101, B=2, T=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(4, vocab, (B, T), generator=g)


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def test_linear_rewrites_are_exact():
    torch.manual_seed(0)
    fc1, fc2 = nn.Linear(16, 32, bias=True), nn.Linear(32, 8, bias=True)
    x = torch.randn(4, 16)
    ref = fc2(fc1(x))
    T_in, T_mid = random_orthogonal_matrix(16, 1), hadamard_matrix(32)
    s = torch.rand(32) + 0.5
    rotate_input(fc1, T_in)
    rotate_output(fc1, T_mid)  # fc1 now produces y T_mid
    rotate_input(fc2, T_mid)
    scale_output(fc1, s)  # fc1 now produces (y T_mid) / s
    scale_input(fc2, s)
    out = fc2(fc1(x @ T_in.float()))
    assert relative_l2_error(ref, out) < 1e-5


def test_scale_norm_and_fold_norm():
    from dllmq.models.common import RMSNorm
    torch.manual_seed(0)
    norm, fc = RMSNorm(16), nn.Linear(16, 8, bias=False)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
    x = torch.randn(3, 16)
    ref = fc(norm(x))
    s = torch.rand(16) + 0.5
    scale_norm(norm, s)
    scale_input(fc, s)
    assert relative_l2_error(ref, fc(norm(x))) < 1e-6
    fold_norm(norm, [fc])
    assert torch.all(norm.weight == 1)
    assert relative_l2_error(ref, fc(norm(x))) < 1e-6


def test_fuse_norms_keeps_logits_on_all_families(tiny_llada, tiny_dream, tiny_llama):
    for model, _ in (tiny_llada, tiny_dream, tiny_llama):
        layout = get_layout(model)
        for b in layout.blocks:  # non-trivial γ so the fold has something to do
            with torch.no_grad():
                b.attn_norm.weight.uniform_(0.5, 2.0)
                b.mlp_norm.weight.uniform_(0.5, 2.0)
        with torch.no_grad():
            layout.final_norm.weight.uniform_(0.5, 2.0)
        ids = _ids()
        ref = _logits(model, ids)
        fuse_norms(layout)
        assert all(torch.all(b.attn_norm.weight == 1) for b in layout.blocks)
        assert relative_l2_error(ref, _logits(model, ids)) < 1e-4


def test_untie_head_then_rotate_embedding_and_head():
    model, _ = build_random_model("llama", tie_word_embeddings=True)
    layout = get_layout(model)
    assert layout.head.weight is layout.embed.weight
    ids = _ids()
    ref = _logits(model, ids)
    head = untie_head(layout)
    assert head.weight is not layout.embed.weight
    assert torch.equal(head.weight, layout.embed.weight)
    Q = random_orthogonal_matrix(layout.hidden_size, seed=0)
    rotate_embedding(layout.embed, Q)  # the embedding changes, the head must not
    assert relative_l2_error(ref, _logits(model, ids)) > 1e-2
    rotate_embedding(layout.embed, Q.T)
    assert relative_l2_error(ref, _logits(model, ids)) < 1e-5
