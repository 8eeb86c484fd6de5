"""rhlens.encoding: spans through the offset mapping, and no silent clamping (issue 14 item 8)."""

import dataclasses

import pytest

from rhlens.encoding import encode_example
from rhlens.models import word_level_tokenizer
from rhlens.tasks import Example

EX = Example("Ann lives in Rome .\nQuestion: Where does Ann live ?\nAnswer:", "Rome", ((13, 17),), "niah", "real")


@pytest.fixture(scope="module")
def tok():
    return word_level_tokenizer([EX.prompt + EX.completion])


def test_needle_and_answer_tokens(tok):
    enc = encode_example(tok, EX)
    assert tok.convert_ids_to_tokens(enc.tokens[slice(*enc.needle_spans[0])]) == ["Rome"]
    assert enc.tokens[: enc.prompt_len] == tok(EX.prompt)["input_ids"]
    assert tok.convert_ids_to_tokens(enc.answer_tokens) == ["Rome", tok.eos_token]


@pytest.mark.parametrize("span", [(13, 400), (17, 13), (-1, 3)])
def test_spans_past_the_prompt_are_refused_not_clamped(tok, span):
    bad = dataclasses.replace(EX, needles=(span,))
    with pytest.raises(ValueError, match=r"Example 3 \(task 'niah'\): needle 0 .*empty or outside the prompt"):
        encode_example(tok, bad, index=3)


def test_answer_spans_are_mapped_once_by_the_encoding_and_shifted_by_truncation(tok):
    from rhlens.scoring.answer_spans import answer_mask
    from rhlens.training.data import truncate_left

    ex = dataclasses.replace(EX, needles=((0, 19),), answer_spans=((13, 17),))
    for with_answer in (False, True):
        enc = encode_example(tok, ex, with_answer=with_answer)
        assert tok.convert_ids_to_tokens(enc.tokens[slice(*enc.answer_spans[0])]) == ["Rome"]
        assert enc.answer_spans != enc.needle_spans and enc.completion_span[1] == len(enc.tokens)
        assert answer_mask(ex, enc).nonzero().flatten().tolist() == list(range(*enc.answer_spans[0]))
    cut = truncate_left(enc, len(enc.tokens) - 2)
    assert cut.answer_spans == ((enc.answer_spans[0][0] - 2, enc.answer_spans[0][1] - 2),)
    with pytest.raises(ValueError, match=r"Example 0 \(task 'niah'\): answer span 0 at characters 18:19 .*covers no"):
        encode_example(tok, dataclasses.replace(ex, prompt=ex.prompt[:18] + "  " + ex.prompt[19:], answer_spans=((18, 19),)))
