"""An answer that is only the unknown token inside a known sentence needle (issue 22 item 13): the
needle passes the needle check, so the answer spans are checked too, where every analyzer encodes."""

import warnings

import pytest

from rhlens.encoding import encode_example
from rhlens.models import word_level_tokenizer
from rhlens.models.tokenizer import UnknownTokenWarning
from rhlens.tasks import Example

TOK = word_level_tokenizer(["Ann lives in the city of Rome . Question : Where does Ann live ? Answer : Rome"])
PROMPT = "Ann lives in the city of Zanzibar . Question : Where does Ann live ? Answer :"


def test_an_unknown_answer_inside_a_known_needle_warns():
    ex = Example(prompt=PROMPT, answer="Zanzibar", needles=((0, 34),), task="mdqa", variant="real")
    with pytest.warns(UnknownTokenWarning, match=r"Example 5 \(task 'mdqa'\): answer span 0 \(tokens 7:8\) is only the unknown token"):
        encode_example(TOK, ex, index=5)


def test_a_known_answer_is_silent():
    ex = Example(prompt=PROMPT.replace("Zanzibar", "Rome"), answer="Rome", needles=((0, 30),), task="mdqa", variant="real")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encode_example(TOK, ex, index=0)
