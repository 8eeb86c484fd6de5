"""Attention supervision: targets, the extra loss, and that it actually shapes the two heads."""

import pytest
import torch

from rhlens.adapter import count_hooks
from rhlens.heads import Head
from rhlens.models import tiny_llama, word_level_tokenizer
from rhlens.pretrain.supervision import (
    AttentionSupervision,
    induction_targets,
    previous_token_targets,
    supervise_attention,
)
from rhlens.training import TrainConfig, train
from rhlens.tasks import Example


def test_targets_on_a_repeated_segment():
    tokens = torch.tensor([[1, 5, 6, 7, 5, 6, 7, 0, 0]])
    assert previous_token_targets(tokens, pad_id=0).tolist() == [[-1, 0, 1, 2, 3, 4, 5, -1, -1]]
    assert induction_targets(tokens, pad_id=0).tolist() == [[-1, -1, -1, -1, 2, 3, 4, -1, -1]]


def test_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="later layer"):
        AttentionSupervision.from_dict({"previous_token_head": "L1H0", "induction_head": "L0H0"})
    with pytest.raises(ValueError, match="expected keys"):
        AttentionSupervision.from_dict({"previous_token_head": "L0H0"})
    sup = AttentionSupervision.from_dict({"previous_token_head": "0-1", "induction_head": "L1H2", "weight": 2})
    assert sup.to_dict() == {"previous_token_head": "L0H1", "induction_head": "L1H2", "weight": 2.0}


def _repeat_examples(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    words = [f"w{i}" for i in range(40)]
    out = []
    for _ in range(n):
        seg = [words[i] for i in torch.randint(40, (6,), generator=g).tolist()]
        text = " ".join(seg + seg + seg)
        first, _, rest = text.partition(" ")
        out.append(Example(prompt=first, answer=rest, needles=((0, len(first)),), task="repeat", variant="pretrain"))
    return out, word_level_tokenizer(words)


def _attention_on_targets(model, examples, head, targets_fn):
    tokens = torch.tensor([model.tokenizer(e.prompt + e.completion)["input_ids"] for e in examples[:8]])
    _, cache = model.run_with_cache(tokens)
    pattern = cache["pattern", head.layer][:, head.head]
    t = targets_fn(tokens, pad_id=0)
    b, q = (t >= 0).nonzero(as_tuple=True)
    return float(pattern[b, q, t[b, q]].mean())


def test_supervision_pulls_the_heads_to_their_targets():
    examples, tok = _repeat_examples(64)
    sup = AttentionSupervision(Head(0, 0), Head(1, 0), weight=5.0)
    config = TrainConfig(steps=60, batch_size=8, lr=1e-2, progress=False)
    plain = tiny_llama(tokenizer=tok, n_layers=2, d_model=32, n_heads=2, d_mlp=64, n_ctx=64, seed=0)
    train(plain, examples, config)
    supervised = tiny_llama(tokenizer=tok, n_layers=2, d_model=32, n_heads=2, d_mlp=64, n_ctx=64, seed=0)
    with supervise_attention(supervised, sup, pad_id=0) as extra_loss:
        result = train(supervised, examples, config, extra_loss=extra_loss)
    assert count_hooks(supervised) == 0
    assert len(result.loss_curve) == config.steps
    for head, fn in ((sup.previous_token_head, previous_token_targets), (sup.induction_head, induction_targets)):
        assert _attention_on_targets(supervised, examples, head, fn) > 2 * _attention_on_targets(plain, examples, head, fn)


def test_supervised_head_outside_the_model_is_an_error():
    _, tok = _repeat_examples(1)
    model = tiny_llama(tokenizer=tok, n_layers=1, d_model=32, n_heads=2, d_mlp=64, n_ctx=64)
    with pytest.raises(ValueError, match="outside a model"):
        with supervise_attention(model, AttentionSupervision(Head(0, 0), Head(1, 0)), pad_id=0):
            pass
