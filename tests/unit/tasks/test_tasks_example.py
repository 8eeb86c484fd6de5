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
