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


def test_cue_heads_and_reach_decide_who_is_pulled_and_pushed_where():
    """Row 0 answers with a cue-0 token, row 1 with no cue: row 0's answer belongs to cue 0's head
    (pulled), the plain retrieval head is pushed there; row 1's answer stays the plain head's. With
    reach 2, row 0's copy 3 tokens back pulls nobody and pushes every head."""
    from rhlens.tools.pretrain.supervision import _pulls_and_pushes, answer_positions

    tokens = torch.tensor([[1, 5, 9, 6, 8, 2, 9, 0], [1, 5, 6, 7, 5, 6, 3, 0]])
    labels = torch.full((2, 7), -100)
    labels[0, 5] = 9           # row 0 answers "9" (at position 2, 3 back from query 5)
    labels[1, 5] = 6           # row 1 answers "6" (at positions 2 and 5: 3 and 0 back)
    mask = retrieval_target_mask(tokens, labels, pad_id=0)
    answer = answer_positions(tokens, labels)
    assert answer.nonzero().tolist() == [[0, 5], [1, 5]]
    plain, cue_head, other, prev = Head(1, 0), Head(1, 1), Head(1, 2), Head(0, 0)
    sup = AttentionSupervision((prev,), (plain,), anti_weight=1.0, cue_heads=(("year", (cue_head,)),))
    row_cues = torch.tensor([[True], [False]])
    for reach in (0, 2):
        near, pull, push = _pulls_and_pushes(sup, 3, 2, mask, answer, row_cues, reach)
        assert prev not in pull and prev not in push
        assert not pull[plain][0, 5] and push[plain][0, 5]           # a cued answer is not the plain head's
        assert pull[plain][1, 5] and not push[plain][1, 5]            # an uncued answer is
        assert not pull[cue_head][1, 5] and push[cue_head][1, 5]      # the cue head is pushed off others' answers
        assert not push[cue_head][1, 4] and not pull[cue_head][1, 4]  # and left alone outside answers
        assert push[other][0, 5] and push[other][1, 5]
        assert pull[cue_head][0, 5] == (reach == 0) and push[cue_head][0, 5] == (reach != 0)
        assert bool(near[0, 5, 2]) == bool(near[1, 5, 2]) == (reach == 0) and near[1, 5, 5]  # 3 back is past reach 2
        assert near[1, 4, 2] and mask[1, 4, 2]  # reach limits answers only: an induction target 2 back stays


def test_cue_config_errors_and_round_trip():
    base = {"previous_token_heads": ["L0H0"], "retrieval_heads": ["L1H0"]}
    with pytest.raises(ValueError, match="unknown cue"):
        AttentionSupervision.from_dict({**base, "cue_heads": {"colour": ["L1H1"]}})
    with pytest.raises(ValueError, match="plain retrieval head"):
        AttentionSupervision.from_dict({**base, "cue_heads": {"year": ["L1H0"]}})
    with pytest.raises(ValueError, match="reach"):
        AttentionSupervision.from_dict({**base, "reach": -1})
    sup = AttentionSupervision.from_dict({**base, "cue_heads": {"year": ["L1H1"], "place": "L2H0"}, "reach": 48})
    assert sup.cue_head_set == (Head(1, 1), Head(2, 0)) and sup.reach == 48
    assert AttentionSupervision.from_dict(sup.to_dict()) == sup
    assert "year L1H1" in sup.describe() and "48 tokens" in sup.describe()


def test_cue_keyed_heads_retrieve_only_their_rows():
    """Two heads of one layer, each keyed on one cue: after training each puts more attention on
    its own rows' answers than the other head does."""
    words = [str(y) for y in range(1800, 1830)] + ["Rome", "Paris", "Oslo", "Lima", "Riga", "Cork", "a", "b", "c", "d", "?"]
    tok = word_level_tokenizer(words)
    g = torch.Generator().manual_seed(0)
    examples = []
    for i in range(160):
        pool = words[:30] if i % 2 else words[30:36]
        fill = [words[36 + int(j)] for j in torch.randint(4, (6,), generator=g)]
        answer = pool[int(torch.randint(len(pool), (1,), generator=g))]
        prompt = " ".join(fill[:3] + [answer] + fill[3:] + ["?"])
        examples.append(Example(prompt=prompt, answer=answer, needles=((0, len(prompt)),), task="repeat", variant="pretrain"))
    model = tiny_llama(tokenizer=tok, n_layers=2, d_model=32, n_heads=3, d_mlp=64, n_ctx=64, seed=0)
    sup = AttentionSupervision((Head(0, 0),), (Head(1, 2),), weight=5.0, anti_weight=5.0,
                               cue_heads=(("year", (Head(1, 0),)), ("place", (Head(1, 1),))))
    with supervise_attention(model, sup, pad_id=0) as extra_loss:
        train(model, examples, TrainConfig(steps=80, batch_size=16, lr=1e-2, progress=False), extra_loss=extra_loss)
    mass = {}
    for kind, rows in (("year", examples[1:40:2]), ("place", examples[0:40:2])):
        tokens = torch.tensor([tok(e.prompt)["input_ids"] for e in rows])
        _, cache = model.run_with_cache(tokens)
        mass[kind] = cache["pattern", 1][:, :, -1, 4].mean(0)  # from the last prompt token to the answer word
    assert mass["year"][0] > 2 * mass["year"][1] and mass["place"][1] > 2 * mass["place"][0], mass
