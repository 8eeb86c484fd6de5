import json

import pytest

from rhlens.tasks import Example, from_hf_dataset, generate, load_jsonl, save_jsonl, to_hf_dataset


def make(**kw):
    d = dict(prompt="Ann lives in Rome.\nQuestion: Where does Ann live?\nAnswer:", answer="Rome",
             needles=((13, 17),), task="mdqa", variant="realistic", aliases=("Roma",),
             meta={"seed": 1, "knobs": [1, 2]})
    d.update(kw)
    return Example(**d)


def test_properties():
    ex = make()
    assert ex.completion == " Rome"
    assert ex.needle_texts == ("Rome",)
    assert ex.validate() is ex


@pytest.mark.parametrize("needles,msg", [(((13, 13),), "needles\\[0\\]"), (((0, 999),), "outside"),
                                         (((-1, 3),), "needles\\[0\\]"), ((), "empty")])
def test_validate_names_needles(needles, msg):
    with pytest.raises(ValueError, match=msg):
        make(needles=needles).validate()


def test_validate_other_fields():
    with pytest.raises(ValueError, match="answer"):
        make(answer=" Rome").validate()
    with pytest.raises(ValueError, match="meta"):
        make(meta={"x": object()}).validate()
    with pytest.raises(ValueError, match="missing field"):
        Example.from_dict({"prompt": "x"})


def test_dict_and_jsonl_round_trip(tmp_path):
    exs = [make()] + generate("musique", "fictional", n=3, context_tokens=128, seed=0)
    assert [Example.from_dict(json.loads(json.dumps(e.to_dict()))) for e in exs] == exs
    path = tmp_path / "sub" / "set.jsonl"
    save_jsonl(exs, path)
    assert load_jsonl(path) == exs
    assert [p.name for p in path.parent.iterdir()] == ["set.jsonl"]  # no temp files left


def test_save_jsonl_is_atomic_on_error(tmp_path):
    path = tmp_path / "set.jsonl"
    save_jsonl([make()], path)

    class Boom:
        def to_dict(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        save_jsonl([make(), Boom()], path)
    assert load_jsonl(path) == [make()]
    assert len(list(tmp_path.iterdir())) == 1


def test_load_jsonl_names_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(make().to_dict()) + "\n" + json.dumps({"prompt": "x"}) + "\n")
    with pytest.raises(ValueError, match="line 2"):
        load_jsonl(path)


def test_hf_dataset_round_trip():
    exs = generate("summhay", "symbolic", n=2, context_tokens=128, seed=0) + [make()]
    ds = to_hf_dataset(exs)
    assert len(ds) == 3 and set(ds.column_names) >= {"prompt", "answer", "needles", "meta"}
    assert from_hf_dataset(ds) == exs


def test_answer_spans_located_when_not_given():
    ex = make()
    assert ex.answer_spans == ((13, 17),) and ex.answer_texts == ("Rome",)
    # an alias is used when the answer is absent; an in-word occurrence never is
    prompt = "Ann lives in Roma.\nAnswer:"
    assert make(prompt=prompt, needles=((0, 18),)).answer_texts == ("Roma",)
    assert make(prompt="In 1901 it rained.\nAnswer:", answer="190", aliases=(),
                needles=((0, 18),)).answer_spans == ()
    # only inside a needle span
    assert make(prompt="Rome. Ann lives in Rome.\nAnswer:", needles=((19, 24),)).answer_spans == ((19, 23),)


def test_answer_spans_given_serialised_and_validated(tmp_path):
    ex = make(answer_spans=[[13, 17]])
    assert ex.answer_spans == ((13, 17),)
    assert Example.from_dict(json.loads(json.dumps(ex.to_dict()))) == ex
    old = ex.to_dict()
    del old["answer_spans"]  # a record written before the field existed still loads
    assert Example.from_dict(old).answer_spans == ((13, 17),)
    save_jsonl([ex], tmp_path / "a.jsonl")
    assert load_jsonl(tmp_path / "a.jsonl")[0].answer_spans == ((13, 17),)
    for bad in ([(13, 13)], [(0, 999)], [(-1, 2)]):
        with pytest.raises(ValueError, match="answer_spans\\[0\\]"):
            make(answer_spans=bad).validate()
