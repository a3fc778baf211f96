"""The LLaDA training objective, the tokenizer and a short training run of the tiny dLLM."""
import json
import re

import pytest
import torch
import torch.nn.functional as F

from dllmq.models import build_random_model
from dllmq.tiny.lexicon import all_words
from dllmq.tiny.objective import EPS, mask_rates, masked_diffusion_loss


class Recorder(torch.nn.Module):
    """Wraps a model and keeps the last noisy input it saw."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, None

    def forward(self, input_ids, attention_mask=None):
        self.seen = input_ids.clone()
        return self.model(input_ids=input_ids, attention_mask=attention_mask)


def test_mask_rates_are_stratified_and_bounded():
    p = mask_rates(8, torch.Generator().manual_seed(0))
    t = (p - EPS) / (1 - EPS)
    assert p.min() >= EPS and p.max() <= 1
    assert sorted(((t * 8) // 1).long().tolist()) == list(range(8))  # one draw in each eighth of [0, 1)


def test_loss_matches_the_defining_equation_and_never_masks_the_prompt(tiny_llada):
    model, tok = tiny_llada
    rec = Recorder(model)
    torch.manual_seed(0)
    ids = torch.randint(4, 90, (3, 12))
    maskable = torch.zeros_like(ids, dtype=torch.bool)
    maskable[:, 5:] = True  # a 5-token prompt
    maskable[2, 10:] = False  # a shorter row (its tail plays padding)
    attention = maskable.clone().long()
    attention[:, :5] = 1
    p = torch.tensor([0.3, 0.7, 1.0])
    loss = masked_diffusion_loss(rec, ids, maskable, tok.mask_token_id, attention, torch.Generator().manual_seed(1), p=p)
    masked = rec.seen == tok.mask_token_id
    assert not masked[:, :5].any() and not masked[2, 10:].any() and masked[2, 5:10].all()  # p = 1 masks all
    # recompute: sum over masked positions of CE / p, divided by the row's answer length, mean over rows
    logits = model(input_ids=rec.seen, attention_mask=attention).logits
    ce = F.cross_entropy(logits.transpose(1, 2), ids, reduction="none")
    expected = torch.stack([(ce[i] * masked[i]).sum() / p[i] / maskable[i].sum() for i in range(3)]).mean()
    torch.testing.assert_close(loss, expected)


def test_loss_is_unbiased_for_the_mean_masked_ce(tiny_llada):
    """E[(1/p) sum_masked CE] = sum_all CE when masks ignore the model's input: check by Monte Carlo on
    a fixed prediction (a model whose output does not depend on its input)."""
    class Constant(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.logits = torch.randn(1, 6, 20, generator=torch.Generator().manual_seed(0))

        def forward(self, input_ids, attention_mask=None):
            return type("Out", (), {"logits": self.logits.expand(input_ids.shape[0], -1, -1)})()

    model = Constant()
    ids = torch.randint(4, 20, (1, 6), generator=torch.Generator().manual_seed(1)).expand(4000, -1)
    maskable = torch.ones_like(ids, dtype=torch.bool)
    loss = masked_diffusion_loss(model, ids, maskable, 3, generator=torch.Generator().manual_seed(2))
    exact = F.cross_entropy(model.logits[0], ids[0]).item()
    assert abs(loss.item() - exact) < 0.1 * exact


def test_tiny_tokenizer_keeps_words_whole_and_splits_digits():
    from dllmq.tiny.tokenizer import EOS_ID, MASK_ID, build_tiny_tokenizer
    tok = build_tiny_tokenizer()
    assert tok.mask_token_id == MASK_ID and tok.eos_token_id == EOS_ID
    assert [w for w in sorted(all_words()) if len(tok(" " + w)["input_ids"]) != 1] == []
    assert tok.convert_ids_to_tokens(tok(" 305")["input_ids"]) == ["Ġ", "3", "0", "5"]
    text = 'def f(xs):\n    """Return xs."""\n    return [v * 2 for v in xs]'
    assert tok.decode(tok(text)["input_ids"]) == text
    # the shipped model's tokenizer is exactly this one (the recipe rebuilds it from the corpus)
    from dllmq.models.loading import TINY_ASSET_DIR, load_tokenizer
    shipped = load_tokenizer(TINY_ASSET_DIR)
    assert shipped.get_vocab() == tok.get_vocab()
    assert shipped(text)["input_ids"] == tok(text)["input_ids"]


def test_corpus_config_and_drill_rows():
    import random

    from dllmq.tiny.corpus import CorpusConfig, drill_text, rows
    stream = rows(0, CorpusConfig(drill_share=1.0, pretrain_share=0.0, fact_share=0.0))
    row = next(stream)
    assert row.task == "drill" and row.prompt == "" and "Question" not in row.answer
    for a, op, b, c in __import__("re").findall(r"(\d+)([-+*/])(\d+)=(\d+)\.", drill_text(random.Random(0), 8)):
        assert {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b), "/": int(a) // int(b)}[op] == int(c)
    default = rows(3)
    assert [next(default) for _ in range(20)] == [r for r, _ in zip(rows(3, CorpusConfig()), range(20))]
    with pytest.raises(ValueError, match="mix"):
        CorpusConfig(mix={"poetry": 1.0})
    with pytest.raises(ValueError, match="drill_share"):
        CorpusConfig(drill_share=1.5)
    with pytest.raises(ValueError, match="fact_share"):
        CorpusConfig(fact_share=0.9)  # with the default pretraining share, more than all rows


def test_fact_rows_show_the_operands_and_mask_only_the_results():
    """A fact row chains worked steps of training problems: operands never masked, results maskable."""
    import random
    import re

    from dllmq.tiny.corpus import CorpusConfig, Row, fact_row, rows
    from dllmq.tiny.tokenizer import build_tiny_tokenizer
    from dllmq.tiny.train import encode_row

    ops = {"+": int.__add__, "-": int.__sub__, "*": int.__mul__, "/": int.__floordiv__}
    rng, seen, tok = random.Random(0), set(), build_tiny_tokenizer()
    for _ in range(50):
        row = fact_row(rng, 5)
        assert len(row.pieces) == 10 and [m for _, m in row.pieces] == [False, True] * 5
        for (operands, _), (result, _) in zip(row.pieces[::2], row.pieces[1::2]):
            a, op, b = re.fullmatch(r" (\d+)([-+*/])(\d+)=", operands).groups()
            assert result == f"{ops[op](int(a), int(b))}."
            seen.add(op)
        ids, maskable = encode_row(tok, row)
        text = "".join(t for t, _ in row.pieces)
        assert ids == tok(text, add_special_tokens=False)["input_ids"]  # same tokens as the joined text
        targets = tok.decode([i for i, m in zip(ids, maskable) if m])
        assert targets == "".join(r for r, _ in row.pieces[1::2])  # digits are single tokens: one per character
        assert sum(maskable) == len(targets)
    assert seen == set(ops)  # every kind of step occurs
    stream = rows(1, CorpusConfig(fact_share=1.0, pretrain_share=0.0))
    assert all(next(stream).task == "fact" for _ in range(20))
    # an ordinary row: the prompt is never masked, the answer and its EOS padding are
    ids, maskable = encode_row(tok, Row("Question: 1?\nAnswer:", " yes", 2, "general"))
    n_prompt = len(tok("Question: 1?\nAnswer:", add_special_tokens=False)["input_ids"])
    assert maskable == [False] * n_prompt + [True] * (len(ids) - n_prompt) and ids[-2:] == [2, 2]


def test_visible_work_rows_mask_only_the_results_and_the_final_number():
    """A visible-work math row keeps the question and the worked operands visible; only each step's result,
    the final number and the EOS padding may be masked. Its tokens are those of the ordinary row."""
    from dllmq.tiny.corpus import CorpusConfig, rows
    from dllmq.tiny.tokenizer import EOS_ID, build_tiny_tokenizer
    from dllmq.tiny.train import encode_row

    tok, stream = build_tiny_tokenizer(), rows(2, CorpusConfig(visible_work_share=1.0, pretrain_share=0.0,
                                                              fewshot_share=0.0, mix={"math": 1.0}))
    for _ in range(40):
        row = next(stream)
        assert row.task == "math" and row.pieces
        ids, maskable = encode_row(tok, row)
        assert ids == tok(row.prompt + row.answer, add_special_tokens=False)["input_ids"] + [EOS_ID] * row.n_eos
        steps = re.findall(r"=(\d+)\.", row.answer)
        final = row.answer.rsplit("#### ", 1)[1]
        n_answer = len(ids) - row.n_eos
        assert tok.decode([i for i, m in zip(ids[:n_answer], maskable) if m]) == "".join(steps) + final
        assert all(maskable[n_answer:])
    default = rows(2)
    assert not any(next(default).pieces for _ in range(200))  # off by default: ordinary rows
    with pytest.raises(ValueError, match="visible_work_share"):
        CorpusConfig(visible_work_share=1.5)


@pytest.mark.slow
def test_short_training_run_reduces_the_loss(tmp_path):
    """A few steps of the real script on a very small config lower the loss on a fixed batch."""
    from dllmq.models import load_model
    from dllmq.tiny import train as tt
    from dllmq.tiny.tokenizer import MASK_ID, build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    batch = next(tt.batches(tok, seed=123, token_budget=2048))

    def loss_of(model):
        with torch.no_grad():
            g = torch.Generator().manual_seed(0)
            return float(sum(masked_diffusion_loss(model, batch[0], batch[1], MASK_ID, batch[2], g) for _ in range(8)) / 8)

    torch.manual_seed(0)
    before = loss_of(tt.LLaDAModelLM(tt.tiny_llada_config(len(tok), **tt.model_size(32, 1))).eval())
    assert tt.main(["--out", str(tmp_path), "--seed", "0", "--steps", "40", "--lr", "5e-3", "--token-budget", "1024",
                    "--d-model", "32", "--n-layers", "1", "--threads", "1"]) == 0
    recipe = json.loads((tmp_path / "recipe.json").read_text())
    model, tok2 = load_model(str(tmp_path), device="cpu")
    after = loss_of(model)
    assert after < before - 0.5, (before, after)
    assert recipe["steps"] == 40 and recipe["seed"] == 0 and recipe["params"] == sum(p.numel() for p in model.parameters())
    assert tok2.mask_token_id == MASK_ID and model.config.model_type == "llada"
