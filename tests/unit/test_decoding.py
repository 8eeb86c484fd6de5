"""greedy_decode: batched, left-padded, chunked decoding equals token-by-token recomputation."""

import pytest
import torch

from rhlens.adapter import count_hooks, forward, hook_name, hooks
from rhlens.decoding import default_stop_ids, greedy_decode
from rhlens.models import as_bridge, tiny_llama, word_level_tokenizer

WORDS = "a b c d e f g h i j k l m n o p q r s t u v w x y z"


@pytest.fixture(scope="module")
def model():
    return tiny_llama(tokenizer=word_level_tokenizer([WORDS]), seed=1, n_key_value_heads=2)


def _prompts(n_ctx_words=(37, 12, 25), seed=0):
    g = torch.Generator().manual_seed(seed)
    return [[1] + torch.randint(4, 30, (n,), generator=g).tolist() for n in n_ctx_words]


def _reference(model, prompt, steps):
    seq = list(prompt)
    for _ in range(steps):
        seq.append(int(forward(model, torch.tensor([seq]))[0, -1].argmax()))
    return seq[len(prompt):]


@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_batched_chunked_equals_recomputation(model, chunk_size):
    prompts = _prompts()
    out = greedy_decode(model, prompts, max_new_tokens=8, stop_ids=set(), chunk_size=chunk_size)
    assert out.tokens == [_reference(model, p, 8) for p in prompts]
    assert out.stopped == [False, False, False]


def test_stop_token_ends_a_row_and_is_excluded(model):
    prompt = _prompts((20,))[0]
    free = greedy_decode(model, [prompt], max_new_tokens=6, stop_ids=set()).tokens[0]
    stop = free[2]
    out = greedy_decode(model, [prompt], max_new_tokens=6, stop_ids={stop})
    assert out.tokens[0] == free[: free.index(stop)]
    assert out.stopped == [True]


def test_on_step_sees_every_produced_token(model):
    prompts = _prompts((10, 15))
    seen = []
    out = greedy_decode(model, prompts, max_new_tokens=5, stop_ids=set(),
                          on_step=lambda step, tokens, active: seen.append((step, tokens.tolist())))
    assert [s for s, _ in seen] == list(range(5))
    for b in range(2):
        assert [tokens[b] for _, tokens in seen] == out.tokens[b]


def test_hooked_layers_see_eager_patterns_and_hooks_are_removed(model):
    rows = []
    with hooks(model, [(hook_name("pattern", 0), lambda p, hook: rows.append(p.shape))]):
        greedy_decode(model, _prompts((9,)), max_new_tokens=3, stop_ids=set(), chunk_size=4)
    assert rows[0][2] == 4 and rows[-1][2] == 1  # chunk rows, then one row per decoding step
    assert count_hooks(model) == 0


def test_bridge_generation_equals_hooked(model):
    bridge = as_bridge(model)
    prompts = _prompts()
    expected = greedy_decode(model, prompts, max_new_tokens=6, stop_ids=set(), chunk_size=5).tokens
    assert greedy_decode(bridge, prompts, max_new_tokens=6, stop_ids=set(), chunk_size=5).tokens == expected


def test_errors_name_the_prompt(model):
    with pytest.raises(ValueError, match="Prompt 1 is empty"):
        greedy_decode(model, [[1, 5], []])
    with pytest.raises(ValueError, match="Prompt 0 has 500 tokens"):
        greedy_decode(model, [[5] * 500], max_new_tokens=50)


def test_default_stop_ids_are_eos_and_newline_on_a_sentencepiece_tokenizer():
    """The stop rule greedy decoding uses by default is EOS and the newline byte token ``<0x0A>``
    on a byte-fallback SentencePiece tokenizer (where ``"\\n"`` encodes to ``['▁', '<0x0A>']``),
    and EOS and ``"\\n"`` on a word-level one."""
    from tests.references.tokenizers import byte_fallback_tokenizer

    sp = byte_fallback_tokenizer()
    assert sp.convert_ids_to_tokens(sorted(default_stop_ids(sp))) == ["</s>", "<0x0A>"]
    words = word_level_tokenizer([WORDS, "\n"])
    assert sorted(words.convert_ids_to_tokens(sorted(default_stop_ids(words)))) == ["\n", "<eos>"]
