"""Data sizing: every example (BOS + prompt + answer + EOS) fits [data] context_tokens."""

import pytest

from rhlens.encoding import encode_example
from rhlens.models import load_base
from rhlens.tools.study import StudyConfig
from rhlens.tools.study.data import build_sets


@pytest.fixture(scope="module")
def tokenizer():
    return load_base().tokenizer


def _config(budget=16, **data):
    base = {"n_train": 6, "n_limited": 2, "n_test": 3, "variants": ["symbolic"]}
    return StudyConfig.from_dict({"data": {**base, **data}, "evaluate": {"max_new_tokens": budget},
                                  "scores": {"n_examples": 3, "max_new_tokens": budget},
                                  "knockout": {"n_examples": 3}, "patching": {"n_examples": 3}})


@pytest.mark.parametrize("task, context", [("mdqa", 96), ("kv", 128)])
def test_every_example_fits_the_context_whole(tokenizer, task, context):
    cfg = _config(context_tokens=context, answer_tokens=20)
    sets, summary = build_sets(cfg, task, tokenizer)
    assert set(sets) == {"real_train", "real_limited", "real_test", "synthetic_symbolic"}
    assert len(sets["real_limited"]) == 2 and sets["real_limited"] == sets["real_train"][:2]
    for name, examples in sets.items():
        for ex in examples:
            n = len(encode_example(tokenizer, ex, with_answer=True, prepend_bos=True).tokens)
            assert n <= context, (name, n)
        assert summary["sets"][name]["max_tokens"] <= context
    assert summary["prompt_budget"] == context - 20 - 1
    assert sets["real_test"][0] != sets["real_train"][0]  # test set drawn apart from training


def test_an_answer_longer_than_its_room_is_an_error_naming_the_fix(tokenizer):
    cfg = _config(budget=2, context_tokens=128, answer_tokens=2)
    with pytest.raises(ValueError, match=r"raise \[data\] answer_tokens"):
        build_sets(cfg, "kv", tokenizer)


def test_real_files_keep_only_fitting_examples_and_name_the_file(tokenizer, tmp_path):
    import json

    rows = []
    for i in range(4):
        ctxs = [{"title": f"Doc {j}", "text": ("filler words here " * (3 if i % 2 else 60)) + f"Rome is the answer {i}.",
                 "hasanswer": j == 0, "isgold": j == 0} for j in range(2)]
        rows.append({"question": f"what is answer {i}?", "answers": ["Rome"], "ctxs": ctxs})
    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    cfg = StudyConfig.from_dict({"data": {"n_train": 2, "n_limited": 1, "n_test": 2, "context_tokens": 128,
                                          "answer_tokens": 16, "real_files": {"mdqa": {"train": str(path), "test": str(path)}},
                                          "variants": ["symbolic"]},
                                 "scores": {"n_examples": 2}, "knockout": {"n_examples": 2}, "patching": {"n_examples": 2}})
    sets, summary = build_sets(cfg, "mdqa", tokenizer)
    assert len(sets["real_train"]) == 2 and summary["dropped"]["real_train"] == 2
    big = cfg.replace(data=type(cfg.data)(**{**cfg.data.__dict__, "n_test": 3}))
    with pytest.raises(ValueError, match="only 2 of 4 examples fit"):
        build_sets(big, "mdqa", tokenizer)


def _qa_file(path, questions):
    import json

    rows = [{"question": f"what is answer {q}?", "answers": ["Rome"],
             "ctxs": [{"title": "Doc", "text": f"Rome is the answer {q}.", "hasanswer": True, "isgold": True}]}
            for q in questions]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _real_config(train, test):
    return StudyConfig.from_dict({"data": {"n_train": 3, "n_limited": 1, "n_test": 2, "context_tokens": 128,
                                           "answer_tokens": 16, "variants": ["symbolic"],
                                           "real_files": {"mdqa": {"train": str(train), "test": str(test)}}},
                                  "scores": {"n_examples": 2}, "knockout": {"n_examples": 2}, "patching": {"n_examples": 2}})


def test_test_examples_that_are_training_examples_are_counted_and_warned(tokenizer, tmp_path):
    cfg = _real_config(_qa_file(tmp_path / "train.jsonl", [1, 2, 3]), _qa_file(tmp_path / "test.jsonl", [3, 4]))
    with pytest.warns(UserWarning, match=r"mdqa: 1 of 2 test examples .*test.jsonl\) are also training examples"):
        _, summary = build_sets(cfg, "mdqa", tokenizer)
    assert summary["test_in_train"] == 1


def test_the_same_file_as_train_and_test_is_refused_in_the_dry_run(tmp_path):
    from rhlens.tools.study import Study

    train = _qa_file(tmp_path / "train.jsonl", [1, 2, 3])
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(train.read_bytes())
    for test in (train, copy):
        with pytest.raises(ValueError, match=r"hold the same data: every test example would be in the training set"):
            Study(_real_config(train, test), tmp_path / "run", progress=False).check()


def test_a_paraphrasing_real_stand_in_asks_in_a_form_no_synthetic_set_uses(tokenizer):
    cfg = _config(context_tokens=128, answer_tokens=16, real_question="paraphrase", variants=["realistic-filler", "symbolic"])
    sets, summary = build_sets(cfg, "mdqa", tokenizer)

    def asks(ex):
        return ex.prompt.split("Question:")[-1]

    for name in ("real_train", "real_limited", "real_test"):
        assert all(asks(ex).startswith(" What is the ") for ex in sets[name]), name
    assert not any(asks(ex).startswith(" What is the ") for ex in sets["synthetic_realistic-filler"])
    assert "paraphrase questions" in summary["sources"]["real_train"]
    assert "paraphrase" not in summary["sources"]["synthetic_realistic-filler"]
    kv_sets, kv_summary = build_sets(cfg, "kv", tokenizer)  # kv asks in one form: the knob is not passed
    assert "paraphrase" not in kv_summary["sources"]["real_train"]
    assert kv_sets["real_train"][0].meta.get("question_form") is None


def test_test_depth_places_every_real_test_needle_and_no_training_needle(tokenizer):
    cfg = _config(context_tokens=128, answer_tokens=16, test_depth=0.0, variants=["realistic-filler"])
    sets, summary = build_sets(cfg, "mdqa", tokenizer)
    assert {ex.meta["gold_doc"] for ex in sets["real_test"]} == {0}
    assert len({ex.meta["gold_doc"] for ex in sets["real_train"]}) > 1  # training needles stay at random depths
    assert "needles at depth 0" in summary["sources"]["real_test"] and "depth" not in summary["sources"]["real_train"]
