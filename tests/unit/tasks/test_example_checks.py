"""``Example`` refuses what would score or train silently wrong (issue 22 items 9, 14, 15): a string
``aliases``, answer spans that do not cover the answer, non-integer offsets, an empty JSONL file."""

import json
import warnings

import pytest

from rhlens.tasks import Example, load_jsonl, save_jsonl

PROMPT = "Doc: the capital is New Delhi, India.\nQuestion: Which country?\nAnswer:"
NEEDLE = ((5, 37),)


def _example(**kw):
    fields = {"prompt": PROMPT, "answer": "India", "needles": NEEDLE, "task": "mdqa", "variant": "real"}
    return Example(**{**fields, **kw})


def test_a_string_alias_is_refused_not_split_into_letters(tmp_path):
    with pytest.raises(TypeError, match=r"Example.aliases must be a list of strings, got 'India'; write \['India'\]"):
        _example(aliases="India")
    row = {**_example().to_dict(), "aliases": "India"}
    path = tmp_path / "ex.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError, match=r"ex.jsonl, line 1: Example.aliases must be a list of strings"):
        load_jsonl(path)
    assert _example(aliases=["Bharat"]).aliases == ("Bharat",)


def test_an_empty_alias_is_refused():
    with pytest.raises(ValueError, match="empty string: it would count every prediction correct"):
        _example(aliases=[""]).validate()


def test_an_answer_span_sharing_no_word_with_the_answer_warns():
    with pytest.warns(UserWarning, match=r"answer_spans\[0\]=\(0, 3\) covers 'Doc', which shares no word with the answer 'India'"):
        _example(answer_spans=[(0, 3)]).validate()
    start = PROMPT.index("India")
    delhi = PROMPT.index("New Delhi")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _example(answer_spans=[(start, start + 5)]).validate().answer_texts == ("India",)
        assert _example(aliases=["New Delhi"], answer_spans=[(delhi, delhi + 9)]).validate()
        assert _example(answer_spans=[(delhi, start + 5)]).validate()  # a span may cover more than the answer


@pytest.mark.parametrize("field, bad", [("answer_spans", [(31.7, 36)]), ("answer_spans", [(True, 5)]),
                                        ("needles", [(5.0, 37)]), ("needles", [("5", 37)])])
def test_float_bool_or_text_offsets_are_refused_not_truncated(field, bad):
    with pytest.raises(TypeError, match=rf"Example.{field}\[0\] must be a pair of integer character offsets"):
        _example(**{field: bad})


def test_an_empty_jsonl_file_is_an_error_naming_it(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    with pytest.raises(ValueError, match="empty.jsonl holds no examples"):
        load_jsonl(path)
    save_jsonl([_example()], path)
    assert load_jsonl(path) == [_example()]
