import gzip
import shutil
from pathlib import Path

import pytest

from rhlens.tasks import (LoadResult, load_lost_in_the_middle_kv, load_lost_in_the_middle_qa,
                          load_musique, load_summhay, parse_citations)
from rhlens.tasks.loaders import MalformedRecordError, NeedleNotFoundError, find_answer, locate_insight

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "tasks"


def gz_copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / (src.name + ".gz")
    with open(src, "rb") as f, gzip.open(dst, "wb") as g:
        shutil.copyfileobj(f, g)
    return dst


def test_qa_needles_prompt_and_gz(tmp_path):
    exs = load_lost_in_the_middle_qa(FIX / "lim_qa.jsonl")
    assert isinstance(exs, LoadResult) and len(exs) == 3 and exs.skipped == 0
    first = exs[0]
    assert first.task == "mdqa" and first.variant == "real"
    assert first.answer == "Maria Lopez" and first.aliases == ("M. Lopez",)
    # the answer span is case and whitespace tolerant; the needle is its sentence
    assert first.answer_texts == ("maria  lopez",)
    assert first.needle_texts == ("The Blue Lighthouse is a painting by maria  lopez, finished in 1912.",)
    assert "Document [2](Title: Blue Lighthouse) The Blue Lighthouse" in first.prompt
    assert first.prompt.endswith("\n\nQuestion: who painted the blue lighthouse\nAnswer:")
    assert first.meta["gold_doc"] == 1 and first.meta["line"] == 1
    assert exs[1].answer == "1888" and exs[1].aliases == ("1 May 1888",)  # first answer found
    assert exs[1].needle_texts == ("The bridge was opened in 1888 by the mayor.",)
    assert exs[2].needle_texts == ("On a clear day the sky is Blue.",)
    assert exs[2].answer_texts == ("Blue",) and exs[2].meta["needle_doc"] == 1  # hasanswer fallback
    from_gz = load_lost_in_the_middle_qa(gz_copy(FIX / "lim_qa.jsonl", tmp_path))
    assert [(e.prompt, e.needles, e.answer_spans, e.answer) for e in from_gz] == \
        [(e.prompt, e.needles, e.answer_spans, e.answer) for e in exs]
    assert from_gz[0].meta["file"] == "lim_qa.jsonl.gz"


def test_qa_n_docs_keeps_gold():
    exs = load_lost_in_the_middle_qa(FIX / "lim_qa.jsonl", n_docs=2)
    assert exs[0].meta["n_docs"] == 2 and "Blue Lighthouse" in exs[0].prompt
    assert "(Title: Harbour)" in exs[0].prompt and "(Title: Lisbon)" not in exs[0].prompt
    # record 3's answer is only in a non-gold context, which n_docs=1 drops
    with pytest.raises(NeedleNotFoundError, match="line 3"):
        load_lost_in_the_middle_qa(FIX / "lim_qa.jsonl", n_docs=1)


def test_kv():
    exs = load_lost_in_the_middle_kv(FIX / "lim_kv.jsonl")
    assert [e.answer for e in exs] == ["9a9a-8b8b", "1"]
    # the needle is the whole gold pair as rendered; the answer span the value in it
    assert exs[0].needle_texts == ('"0f0f-1e1e": "9a9a-8b8b"',) and exs[0].meta["gold_pair"] == 1
    assert [e.answer_texts for e in exs] == [("9a9a-8b8b",), ("1",)]
    assert exs[0].prompt.endswith('Key: "0f0f-1e1e"\nCorresponding value:')
    assert load_lost_in_the_middle_kv(FIX / "lim_kv.jsonl", n_pairs=1)[0].meta["n_pairs"] == 1


def test_musique_hops():
    exs = load_musique(FIX / "musique.jsonl")
    # one needle per hop, in hop order: the supporting sentence holding the hop's answer
    assert exs[0].needle_texts == ("The Quiet Harbour is a novel by Ana Costa, published in 1990.",
                                   "Ana Costa (born in Oporto) is a Portuguese writer.")
    # the alias in the context becomes the answer (what a head copies); the record's answer an alias
    assert exs[0].answer == "Oporto" and exs[0].aliases == ("Porto",)
    assert [e.answer_texts for e in exs] == [("Oporto",), ("Norway",)]
    assert exs[1].needle_texts == ("Bluestone Bank was founded by Erik Berg in 1901.",
                                   "Erik Berg was born in Bergen and died in Oslo.",
                                   "Bergen is a city on the west coast of Norway.")
    assert exs[1].meta["gold_docs"] == [0, 1, 2]
    small = load_musique(FIX / "musique.jsonl", n_docs=2)
    assert small[0].meta["n_docs"] == 2 and small[1].meta["n_docs"] == 3  # supports are kept


def test_summhay_citations():
    exs = load_summhay(FIX / "summhay.json")
    assert [e.answer for e in exs] == ["[1] [2]", "[2]", "[4]"]
    assert [e.meta["insight_id"] for e in exs] == ["I1", "I2", "I3"]
    first = exs[0]
    assert first.needle_texts == ("Tram fares in Lisbon rose by ten percent in 2023.",
                                  "In 2023, fares for Lisbon trams rose by ten percent.")
    for i, (s, e) in zip(parse_citations(first.answer), first.answer_spans, strict=True):
        assert first.prompt[s - len("Document "):e] == f"Document [{i}]"
    assert first.prompt.endswith(
        "Question: Which documents state that Tram fares in Lisbon rose by ten percent in 2023?\nAnswer:")
    small = load_summhay(FIX / "summhay.json", n_docs=2)
    assert small[2].answer == "[2]" and small[2].meta["document_ids"] == ["d1", "d4"]


@pytest.mark.parametrize("loader,name,where,field", [
    (load_lost_in_the_middle_qa, "lim_qa_malformed.jsonl", "line 2", "question"),
    (load_lost_in_the_middle_qa, "lim_qa_bad_json.jsonl", "line 3", "invalid JSON"),
    (load_lost_in_the_middle_kv, "lim_kv_malformed.jsonl", "line 2", "ordered_kv_records[0]"),
    (load_musique, "musique_malformed.jsonl", "line 2", "question_decomposition[1].paragraph_support_idx"),
    (load_summhay, "summhay_malformed.json", "record 1", "documents[1].document_text"),
])
@pytest.mark.parametrize("errors", ["raise", "skip"])
def test_malformed_records_name_file_line_field(loader, name, where, field, errors):
    with pytest.raises(MalformedRecordError) as info:
        loader(FIX / name, errors=errors)
    msg = str(info.value)
    assert name in msg and where in msg and field in msg


@pytest.mark.parametrize("loader,name,n_ok,where,field", [
    (load_lost_in_the_middle_qa, "lim_qa_missing.jsonl", 2, "line 2", "answers"),
    (load_lost_in_the_middle_kv, "lim_kv_missing.jsonl", 2, "line 3", "key"),
    (load_musique, "musique_missing.jsonl", 1, "line 1", "question_decomposition[0].answer"),
    (load_summhay, "summhay_missing.json", 3, "record 1", "I4"),
])
def test_missing_needle_raises_or_is_counted(loader, name, n_ok, where, field):
    with pytest.raises(NeedleNotFoundError) as info:
        loader(FIX / name)
    assert name in str(info.value) and where in str(info.value) and field in str(info.value)
    got = loader(FIX / name, errors="skip")
    assert len(got) == n_ok and got.skipped == 1
    assert where in got.skip_reasons[0] and field in got.skip_reasons[0]
    assert "1 skipped" in repr(got)


def test_bad_errors_argument():
    with pytest.raises(ValueError, match="errors"):
        load_musique(FIX / "musique.jsonl", errors="ignore")


def test_find_answer_and_locate_insight():
    assert find_answer("In New\nYork city", ["new york"]) == (3, 11, "new york", True)
    assert find_answer("abc", ["zzz"]) is None
    text = "Intro here. Drivers went on a long strike over shifts. Other news."
    s, e, r = locate_insight(text, "Drivers went on strike over long shifts.")
    assert text[s:e] == "Drivers went on a long strike over shifts." and r == 1.0
    s, e, r = locate_insight(text, "Completely unrelated words only.")
    assert r < 0.5
