"""Out-of-vocabulary words: the unknown-token rate, a warning, and a refused <unk> needle (issue 14 item 11)."""

import warnings

import pytest

from rhlens.models import word_level_tokenizer
from rhlens.models.tokenizer import UnknownTokenWarning, check_unknown_tokens, unknown_rate

TOK = word_level_tokenizer(["Ann lives in Rome . Question : Where does Ann live ? Answer :"])


def test_unknown_rate_counts_unknown_words_only():
    assert unknown_rate(TOK, "Ann lives in Rome .") == 0.0
    assert unknown_rate(TOK, "Zed lives in Oslo .") == pytest.approx(2 / 5)
    ids = TOK("Zed moved to Oslo")["input_ids"]  # BOS is not counted
    assert ids[0] == TOK.bos_token_id and unknown_rate(TOK, ids) == 1.0
    assert unknown_rate(TOK, "") == 0.0


def test_unknown_needle_is_refused_and_mostly_unknown_text_warns():
    ids = TOK("Zed dwells near Oslo . Question : Where does Zed live ? Answer :")["input_ids"]
    with pytest.raises(ValueError, match=r"Example 7: needle 0 \(tokens 1:5\) is only the unknown token '<unk>'"):
        check_unknown_tokens(TOK, ids, [(1, 5)], where="Example 7")
    with pytest.warns(UnknownTokenWarning, match=r"Example 7: the prompt is 36% unknown tokens") as record:
        check_unknown_tokens(TOK, ids, [(4, 7)], where="Example 7")
    assert any("needle 0 is 33% unknown tokens" in str(w.message) for w in record)


def test_known_text_is_silent():
    ids = TOK("Ann lives in Rome . Question : Where does Ann live ? Answer :")["input_ids"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_unknown_tokens(TOK, ids, [(1, 5)], where="Example 0")


def test_encode_example_refuses_an_unknown_needle():
    """The check runs where every analyzer encodes an example (rhlens.encoding.encode_example)."""
    from rhlens.encoding import encode_example
    from rhlens.tasks import Example

    prompt = "Zed dwells near Oslo . Question : Where does Zed live ? Answer :"
    ex = Example(prompt=prompt, answer="Oslo", needles=((0, 20),), task="mdqa", variant="real")
    with pytest.raises(ValueError, match=r"Example 3 \(task 'mdqa'\): needle 0 .* only the unknown token"):
        encode_example(TOK, ex, index=3)
