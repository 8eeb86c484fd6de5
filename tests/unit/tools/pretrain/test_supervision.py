"""Attention supervision: targets, the extra loss, and that it actually shapes the heads."""

import pytest
import torch

from rhlens.adapter import count_hooks
from rhlens.heads import Head
from rhlens.models import tiny_llama, word_level_tokenizer
from rhlens.tools.pretrain.supervision import (
    AttentionSupervision,
    induction_targets,
    previous_token_targets,
    retrieval_target_mask,
    supervise_attention,
)
from rhlens.training import TrainConfig, train
from rhlens.tasks import Example


def test_targets_on_a_repeated_segment():
    tokens = torch.tensor([[1, 5, 6, 7, 5, 6, 7, 0, 0]])
    assert previous_token_targets(tokens, pad_id=0).tolist() == [[-1, 0, 1, 2, 3, 4, 5, -1, -1]]
    assert induction_targets(tokens, pad_id=0).tolist() == [[-1, -1, -1, -1, 2, 3, 4, -1, -1]]


def test_retrieval_targets_are_answer_copies_on_qa_rows_and_induction_elsewhere():
    # row 0: a QA row (prompt "5 9 6 9 8", answer "9 7" then pad); row 1: whole text (labels from position 1)
    tokens = torch.tensor([[1, 5, 9, 6, 9, 8, 9, 7, 0], [1, 5, 6, 5, 6, 0, 0, 0, 0]])
    labels = torch.full((2, 8), -100)
    labels[0, 5], labels[0, 6] = 9, 7
    labels[1, 1:4] = torch.tensor([6, 5, 6])
    mask = retrieval_target_mask(tokens, labels, pad_id=0)
    keys = lambda b, q: mask[b, q].nonzero().flatten().tolist()  # noqa: E731
    assert keys(0, 5) == [2, 4]      # both prompt positions holding the answer token "9"
    assert keys(0, 6) == []          # "7" occurs nowhere before: nothing to copy
    assert keys(0, 4) == [3]         # a prompt position keeps its induction target (after the earlier "9")
    assert keys(1, 3) == [2] and keys(1, 2) == []   # whole text: induction targets only


def test_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="later layer"):
        AttentionSupervision.from_dict({"previous_token_heads": ["L1H0"], "retrieval_heads": ["L0H0"]})
    with pytest.raises(ValueError, match="expected keys"):
        AttentionSupervision.from_dict({"previous_token_heads": ["L0H0"]})
    with pytest.raises(ValueError, match="both"):
        AttentionSupervision.from_dict({"previous_token_heads": ["L0H0", "L1H0"], "retrieval_heads": ["L1H0"]})
    with pytest.raises(ValueError, match="head labels"):
        AttentionSupervision.from_dict({"previous_token_heads": ["L0H0"], "retrieval_heads": [1.5]})
    sup = AttentionSupervision.from_dict({"previous_token_heads": ["0-1"], "retrieval_heads": "L1H2", "weight": 2})
    assert sup.to_dict() == {"previous_token_heads": ["L0H1"], "retrieval_heads": ["L1H2"], "weight": 2.0, "anti_weight": 0.0, "copy_weight": 0.0}


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


def _trained(tok, examples, **weights):
    """A 2-layer model trained 60 steps with L0H0 previous-token and L1H0 retrieval supervision."""
    model = tiny_llama(tokenizer=tok, n_layers=2, d_model=32, n_heads=2, d_mlp=64, n_ctx=64, seed=0)
    sup = AttentionSupervision((Head(0, 0),), (Head(1, 0),), weight=5.0, **weights)
    with supervise_attention(model, sup, pad_id=0) as extra_loss:
        train(model, examples, TrainConfig(steps=60, batch_size=8, lr=1e-2, progress=False), extra_loss=extra_loss)
    return model


def test_supervision_pulls_the_heads_to_their_targets():
    examples, tok = _repeat_examples(64)
    sup = AttentionSupervision((Head(0, 0),), (Head(1, 0),), weight=5.0)
    config = TrainConfig(steps=60, batch_size=8, lr=1e-2, progress=False)
    plain = tiny_llama(tokenizer=tok, n_layers=2, d_model=32, n_heads=2, d_mlp=64, n_ctx=64, seed=0)
    train(plain, examples, config)
    supervised = tiny_llama(tokenizer=tok, n_layers=2, d_model=32, n_heads=2, d_mlp=64, n_ctx=64, seed=0)
    with supervise_attention(supervised, sup, pad_id=0) as extra_loss:
        result = train(supervised, examples, config, extra_loss=extra_loss)
    assert count_hooks(supervised) == 0
    assert len(result.loss_curve) == config.steps
    for head, fn in ((Head(0, 0), previous_token_targets), (Head(1, 0), induction_targets)):
        assert _attention_on_targets(supervised, examples, head, fn) > 2 * _attention_on_targets(plain, examples, head, fn)


def test_anti_supervision_pushes_the_other_heads_off_the_targets():
    examples, tok = _repeat_examples(64)
    runs = {anti: _trained(tok, examples, anti_weight=anti) for anti in (0.0, 5.0)}
    other = Head(1, 1)
    pushed = _attention_on_targets(runs[5.0], examples, other, induction_targets)
    assert pushed < 0.5 * _attention_on_targets(runs[0.0], examples, other, induction_targets)
    assert _attention_on_targets(runs[5.0], examples, Head(1, 0), induction_targets) > 0.3


def test_supervised_head_outside_the_model_is_an_error():
    _, tok = _repeat_examples(1)
    model = tiny_llama(tokenizer=tok, n_layers=1, d_model=32, n_heads=2, d_mlp=64, n_ctx=64)
    with pytest.raises(ValueError, match="outside a model"):
        with supervise_attention(model, AttentionSupervision((Head(0, 0),), (Head(1, 0),)), pad_id=0):
            pass


def test_copy_loss_trains_the_retrieval_heads_output_to_copy():
    """With copy_weight the retrieval head's own output (final norm, unembedding) predicts the next
    token on the repeats (it attends to the token and its value/output circuit copies it); without
    it that direct path is untrained."""
    examples, tok = _repeat_examples(64)
    tokens = torch.tensor([tok(e.prompt + e.completion)["input_ids"] for e in examples[:8]])
    accuracy = {}
    for copy in (0.0, 5.0):
        model = _trained(tok, examples, copy_weight=copy)
        _, cache = model.run_with_cache(tokens)
        out = cache["z", 1][:, :, 0] @ model.blocks[1].attn.W_O[0]
        direct = model.unembed(model.ln_final(out)).argmax(-1)
        accuracy[copy] = float((direct[:, 7:-1] == tokens[:, 8:]).float().mean())  # the 2nd and 3rd copies
    assert accuracy[5.0] > 0.5 and accuracy[5.0] > accuracy[0.0] + 0.2, accuracy
