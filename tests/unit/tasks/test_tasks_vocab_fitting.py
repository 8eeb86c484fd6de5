import pytest

from rhlens.tasks import WORD_PATTERN, count_tokens, pretokenize
from rhlens.tasks.fitting import ContextTooShortError, fit_length
from rhlens.tasks.vocab import token_counter


def test_pretokenize_and_pattern():
    assert WORD_PATTERN == r"\w+|[^\w\s]|\n"
    assert pretokenize("Hi, ba1-ke4!\n\nOk") == ["Hi", ",", "ba1", "-", "ke4", "!", "\n", "\n", "Ok"]


def test_count_tokens_with_tokenizer_shapes():
    class ListTok:
        def encode(self, text):  # no add_special_tokens keyword: falls back
            return list(text)

    class HFLike:
        def encode(self, text, add_special_tokens=True):
            return [0] * len(text.split()) + ([1] if add_special_tokens else [])

    class Enc:
        def __init__(self, ids):
            self.ids = ids

    class EncTok:
        def encode(self, text, add_special_tokens=True):
            return Enc([0, 0])

    assert count_tokens("abc", ListTok()) == 3
    assert count_tokens("a b c", HFLike()) == 3  # special tokens not counted
    assert count_tokens("x", EncTok()) == 2
    assert token_counter(None)("a b.") == 3


def test_fit_length_reaches_target_with_fine_steps():
    units = ["alpha beta gamma delta epsilon."] * 100

    def render(k, f):
        return " ".join(units[:k] + ([" ".join(units[k].split()[:f])] if f else []))

    for target in (7, 23, 64, 200):
        k, f, n = fit_length(render, target, count_tokens, fine_steps=lambda k: 4)
        assert n == count_tokens(render(k, f))
        assert abs(n - target) <= 0.05 * target


def test_fit_length_errors():
    with pytest.raises(ContextTooShortError, match="context_tokens=5"):
        fit_length(lambda k, f: "a " * (10 + k), 5, count_tokens, fine_steps=lambda k: 0)
    with pytest.raises(ContextTooShortError, match="too coarse"):
        fit_length(lambda k, f: "a " * (10 * k), 55, count_tokens, fine_steps=lambda k: 0)
