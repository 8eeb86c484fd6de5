"""block_attention: Geva et al.'s attention knockout."""

import pytest
import torch

from rhlens.adapter import count_hooks, forward, hook_name, hooks
from rhlens.encoding import pad_left
from rhlens.decoding import chunked_forward
from rhlens.interventions import block_attention


def patterns(model, layer, tokens, mask=None):
    seen = {}
    with torch.inference_mode(), hooks(model, [(hook_name("pattern", layer), lambda p, hook: seen.setdefault("p", p.clone()))]):
        forward(model, tokens, attention_mask=mask)
    return seen["p"]


def test_blocked_edges_get_zero_weight_and_rows_renormalise(make_model):
    model = make_model()
    tokens = model.to_tokens("Ann lives in Rome . Bob")  # 7 columns with BOS
    before = patterns(model, 1, tokens)
    with block_attention(model, from_positions=[4, 5, 6], to_positions=[1, 3], layers=[1]):
        after = patterns(model, 1, tokens)
    assert after[0, :, 4:, [1, 3]].abs().max() == 0
    torch.testing.assert_close(after.sum(-1), torch.ones_like(after.sum(-1)))
    # a blocked row is the intact row with those keys removed and renormalised
    row = before[0, :, 5].clone()
    row[:, [1, 3]] = 0
    torch.testing.assert_close(after[0, :, 5], row / row.sum(-1, keepdim=True))
    # rows that are not blocked are untouched
    torch.testing.assert_close(after[0, :, :4], before[0, :, :4])


def test_heads_only_block_those_heads(make_model):
    model = make_model(n_key_value_heads=2)
    tokens = model.to_tokens("Cat sat on the mat .")
    before = patterns(model, 0, tokens)
    with block_attention(model, 5, [0, 1], heads=["L0H1"]):
        after = patterns(model, 0, tokens)
    assert after[0, 1, 5, :2].abs().max() == 0
    torch.testing.assert_close(after[0, [0, 2, 3]], before[0, [0, 2, 3]])


def test_per_row_positions_with_padding_offsets(make_model, tok):
    model = make_model()
    seqs = [tok("Ann lives in Rome .")["input_ids"], tok("Cat sat on")["input_ids"]]
    batch = pad_left(seqs, tok.pad_token_id)
    # positions in each example's own coordinates, shifted by its left padding
    with block_attention(model, [[3, 4, 5], [2, 3]], [[1], [1]], offsets=batch.offsets):
        with torch.inference_mode():
            padded = forward(model, batch.tokens, attention_mask=batch.attention_mask)
    with torch.inference_mode():
        with block_attention(model, [3, 4, 5], [1]):
            alone0 = forward(model, torch.tensor([seqs[0]]))
        with block_attention(model, [2, 3], [1]):
            alone1 = forward(model, torch.tensor([seqs[1]]))
    torch.testing.assert_close(padded[0], alone0[0], rtol=1e-4, atol=1e-5)
    off = int(batch.offsets[1])
    torch.testing.assert_close(padded[1, off:], alone1[0], rtol=1e-4, atol=1e-5)


def test_blocking_is_the_same_through_the_kv_cache(make_model, tok):
    model = make_model()
    batch = pad_left([tok("Ann lives in Rome . Bob lives in Oslo .")["input_ids"]], tok.pad_token_id)
    with block_attention(model, list(range(4, 11)), [2, 3, 6]), torch.inference_mode():
        full = forward(model, batch.tokens, attention_mask=batch.attention_mask)[:, -1]
        chunked, _ = chunked_forward(model, batch.tokens, batch.attention_mask, chunk_size=3)
    torch.testing.assert_close(chunked, full, rtol=1e-4, atol=1e-4)


def test_bool_masks_are_accepted(make_model):
    model = make_model()
    tokens = model.to_tokens("Ann lives in Rome .")
    frm = torch.zeros(6, dtype=torch.bool)
    frm[4:] = True
    to = torch.zeros(1, 6, dtype=torch.bool)
    to[0, 2] = True
    with block_attention(model, frm, to, layers=[0]):
        p = patterns(model, 0, tokens)
    assert p[0, :, 4:, 2].abs().max() == 0 and p[0, :, 3, 2].min() > 0


def test_blocking_every_key_is_an_error_and_hooks_are_removed(make_model):
    model = make_model()
    tokens = model.to_tokens("Ann lives in Rome .")
    with pytest.raises(ValueError, match="every key of query column 2"):
        with block_attention(model, [2], [0, 1, 2]), torch.inference_mode():
            forward(model, tokens)
    assert count_hooks(model) == 0
    with block_attention(model, [2], [1]):
        assert count_hooks(model) == model.cfg.n_layers
    assert count_hooks(model) == 0


def test_argument_errors(make_model):
    model = make_model()
    with pytest.raises(ValueError, match="not both"):
        with block_attention(model, 1, 0, heads=["L0H0"], layers=[0]):
            pass
    with pytest.raises(ValueError, match="layers \\[7\\]"):
        with block_attention(model, 1, 0, layers=[7]):
            pass
    with pytest.raises(ValueError, match="negative"):
        with block_attention(model, [-1], 0):
            pass


def test_block_attention_beyond_the_sequence_raises(make_model):
    model = make_model()
    tokens = model.to_tokens("Ann lives in Rome .")  # 6 columns
    with pytest.raises(ValueError, match="to_positions reaches column 9, but the longest sequence run inside the block had 6"):
        with block_attention(model, [4, 5], [2, 9]), torch.inference_mode():
            forward(model, tokens)
    with pytest.raises(ValueError, match="from_positions reaches column 7"):
        with block_attention(model, [7], [1]), torch.inference_mode():
            forward(model, tokens)
    with pytest.raises(ValueError, match="past the model's context"):
        with block_attention(model, [4], [model.cfg.n_ctx]):
            pass
    # per-row positions are checked with their padding offsets
    with pytest.raises(ValueError, match="reaches column 6"):
        with block_attention(model, [[3], [3]], [[1], [3]], offsets=torch.tensor([0, 3])), torch.inference_mode():
            forward(model, tokens.repeat(2, 1))
    assert count_hooks(model) == 0
    with block_attention(model, [5], [1, 2]), torch.inference_mode():  # inside: fine
        forward(model, tokens)
