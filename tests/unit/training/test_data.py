import dataclasses

import pytest

from rhlens.encoding import EncodedExample
from rhlens.training.data import IGNORE_INDEX, batch_indices, collate, epoch_order, prepare_examples, shard, truncate_left


def _enc(tokens, prompt_len, index=0):
    return EncodedExample(tokens=list(tokens), prompt_len=prompt_len, needle_spans=((1, 2),), completion_span=(prompt_len, len(tokens)), index=index)


@pytest.mark.parametrize("side", ["left", "right"])
def test_targets_are_answer_tokens_shifted_by_one(side):
    encoded = [_enc([1, 5, 6, 7, 2], 3), _enc([1, 8, 9, 2], 3)]
    batch = collate(encoded, pad_id=0, padding_side=side)
    for b, enc in enumerate(encoded):
        row_targets = batch.targets[b]
        picked = row_targets[row_targets != IGNORE_INDEX].tolist()
        assert picked == enc.answer_tokens
        # each target equals the next token of the padded row
        cols = (row_targets != IGNORE_INDEX).nonzero().flatten()
        assert batch.tokens[b, cols + 1].tolist() == enc.answer_tokens
    assert batch.n_tokens == 9 and batch.n_answer_tokens == 3
    if side == "left":
        assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]]
        assert batch.tokens[1].tolist() == [0, 1, 8, 9, 2]
    else:
        assert batch.attention_mask is None
        assert batch.tokens[1].tolist() == [1, 8, 9, 2, 0]


def test_data_order_is_a_function_of_seed_and_step():
    a = [batch_indices(s, batch_size=4, n_examples=10, seed=3, shuffle=True) for s in range(5)]
    b = [batch_indices(s, batch_size=4, n_examples=10, seed=3, shuffle=True) for s in range(5)]
    assert a == b
    flat = sum(a, [])
    assert sorted(flat[:10]) == list(range(10))  # epoch 0 visits every example once
    assert flat[10:20] == list(epoch_order(10, 1, seed=3, shuffle=True))
    assert batch_indices(0, batch_size=4, n_examples=10, seed=4, shuffle=True) != a[0]


def test_shard_splits_global_batch_between_processes_and_steps():
    idx = list(range(8))
    assert shard(idx, rank=0, world_size=2, grad_accum_steps=2) == [[0, 1], [2, 3]]
    assert shard(idx, rank=1, world_size=2, grad_accum_steps=2) == [[4, 5], [6, 7]]
    with pytest.raises(ValueError, match="equal micro-batches"):
        shard(list(range(7)), rank=0, world_size=2, grad_accum_steps=1)


def test_truncate_left_keeps_the_end():
    enc = _enc(range(1, 11), 8)
    cut = truncate_left(enc, 6)
    assert cut.tokens == [5, 6, 7, 8, 9, 10]
    assert cut.answer_tokens == [9, 10]
    assert cut.needle_spans == ()  # the needle at token 1 was cut off
    with pytest.raises(ValueError, match="answer has 2 tokens"):
        truncate_left(enc, 2)


def test_too_long_example_names_index_and_lengths(kv_tokenizer, examples):
    long = list(examples[:3])
    long[1] = dataclasses.replace(long[1], prompt=long[1].prompt + " x" * 100)
    with pytest.raises(ValueError, match=r"training example 1 has \d+ tokens but the model's context is 64"):
        prepare_examples(long, tokenizer=kv_tokenizer, n_ctx=64)
    fitted = prepare_examples(long, tokenizer=kv_tokenizer, n_ctx=64, truncation="left")
    assert max(len(e.tokens) for e in fitted) == 64
    assert fitted[1].meta["truncated_tokens"] > 0


def test_encoded_examples_pass_through():
    out = prepare_examples([_enc([1, 5, 6, 2], 2)], tokenizer=None, n_ctx=8)
    assert out[0].tokens == [1, 5, 6, 2]


def test_text_without_tokenizer_is_an_error(examples):
    with pytest.raises(ValueError, match="tokenizer"):
        prepare_examples(examples[:1], tokenizer=None, n_ctx=64)
