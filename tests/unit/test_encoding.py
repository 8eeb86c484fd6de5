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
def test_item08_spans_past_the_prompt_are_refused_not_clamped(tok, span):
    bad = dataclasses.replace(EX, needles=(span,))
    with pytest.raises(ValueError, match=r"Example 3 \(task 'niah'\): needle 0 .*empty or outside the prompt"):
        encode_example(tok, bad, index=3)
