"""Issue 14 items 7, 12, 14 and 17 for the task layer: bad input files and caches give
errors naming the file (and line or entry), never a silent wrong result."""

import gzip
import json
import warnings

import pytest

from rhlens.tasks import (TASKS, LLMDocumentSource, generate, load_lost_in_the_middle_kv,
                          load_lost_in_the_middle_qa, load_musique, load_summhay)
from rhlens.tasks.llm_docs import CacheEntryError
from rhlens.tasks.loaders import InWordAnswerError, NoExamplesError, UnreadableFileError

LOADERS = [load_lost_in_the_middle_qa, load_lost_in_the_middle_kv, load_musique, load_summhay]
KV = {"ordered_kv_records": [["a", "b"], ["c", "d"]], "key": "c", "value": "d"}


def nq(answer, text):
    return {"question": "when?", "answers": [answer],
            "ctxs": [{"title": "T", "text": text, "isgold": True}]}


def lines(*records) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("name,content", [("empty.jsonl", b""), ("blank.jsonl", b"\n  \n"),
                                          ("empty.jsonl.gz", gzip.compress(b"")),
                                          ("empty.json", b"[]"), ("zero.json", b"")])
def test_empty_file_is_an_error(tmp_path, loader, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(NoExamplesError, match=f"{name}: no examples loaded from 0 record"):
        loader(path)


def test_every_record_skipped_is_an_error(tmp_path):
    path = tmp_path / "kv.jsonl"
    path.write_bytes(lines({**KV, "key": "zz"}))
    with pytest.raises(NoExamplesError, match="kv.jsonl: no examples loaded from 1 record.*1 skipped"):
        load_lost_in_the_middle_kv(path, errors="skip")


def test_truncated_gzip_names_file_and_line(tmp_path):
    data = gzip.compress(lines(KV, KV, KV) * 200)
    path = tmp_path / "kv.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableFileError, match=r"kv.jsonl.gz, line \d+: the .gz file is truncated"):
        load_lost_in_the_middle_kv(path)


def test_non_gzip_gz_names_file(tmp_path):
    path = tmp_path / "kv.jsonl.gz"
    path.write_bytes(lines(KV))
    with pytest.raises(UnreadableFileError, match="kv.jsonl.gz, line 1: it is not a gzip file"):
        load_lost_in_the_middle_kv(path)


@pytest.mark.parametrize("gz", [False, True])
def test_non_utf8_names_file_and_line(tmp_path, gz):
    raw = lines(KV, KV) + b'{"key": "\xff\xfe"}\n'
    path = tmp_path / ("kv.jsonl.gz" if gz else "kv.jsonl")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(UnreadableFileError, match=r"kv.jsonl(.gz)?, line 3: bytes are not UTF-8"):
        load_lost_in_the_middle_kv(path)
    whole = tmp_path / "summhay.json"
    whole.write_bytes(b'{"documents": [],\n "subtopics": "\xe9"}')
    with pytest.raises(UnreadableFileError, match="summhay.json, line 2: bytes are not UTF-8"):
        load_summhay(whole)


def test_in_word_answer_is_not_an_answer_span(tmp_path):
    path = tmp_path / "nq.jsonl"
    path.write_bytes(lines(nq("190", "It opened in 1901."), nq("1901", "It opened in 1901."),
                           nq("190", "Route 190 opened in 1901.")))
    with pytest.warns(UserWarning, match=r"nq.jsonl: 1 example\(s\) skipped .* inside a longer word") as rec:
        exs = load_lost_in_the_middle_qa(path)
    assert len(rec) == 1  # one warning per load, with the count
    assert [e.answer_texts for e in exs] == [("1901",), ("190",)]
    assert exs.skipped == 1 and "line 1" in exs.skip_reasons[0] and "'1901'" in exs.skip_reasons[0]
    with pytest.raises(InWordAnswerError, match="nq.jsonl, line 1: .*'190' .* longer word '1901'"):
        load_lost_in_the_middle_qa(path, strict=True)


def test_musique_in_word_final_answer(tmp_path):
    rec = {"question": "Which country?", "answer": "America", "answer_aliases": [],
           "paragraphs": [{"idx": 0, "paragraph_text": "He was born in Ohio."},
                          {"idx": 1, "paragraph_text": "Ohio is an American state."}],
           "question_decomposition": [{"answer": "Ohio", "paragraph_support_idx": 0},
                                      {"answer": "America", "paragraph_support_idx": 1}]}
    ok = {**rec, "paragraphs": [rec["paragraphs"][0],
                                {"idx": 1, "paragraph_text": "Ohio is in America."}]}
    path = tmp_path / "m.jsonl"
    path.write_bytes(lines(rec, ok))
    with pytest.warns(UserWarning, match="1 example"):
        exs = load_musique(path)
    assert len(exs) == 1 and exs[0].answer_texts == ("America",)
    with pytest.raises(InWordAnswerError, match="line 1"):
        load_musique(path, strict=True)


class Writer:
    """A fake LLM whose documents mention whatever it is told to."""

    def __init__(self, extra=""):
        self.extra = extra

    def __call__(self, prompt):
        return f"People there like walking. {self.extra} The end."


@pytest.mark.parametrize("content,what", [
    (b"{not json", "is not valid JSON"), (b"[1, 2]", "must be a JSON object"),
    (b'{"prompt": "P", "text": 3}', "field 'text' must be a string"),
    (b'{"text": "x"}', "field 'prompt' must be a string"),
    (b'{"prompt": "other", "text": "x"}', "holds a different prompt"),
    (b'{"prompt": "\xff"}', "is not UTF-8")])
def test_malformed_cache_entry_names_file_and_entry(tmp_path, content, what):
    src = LLMDocumentSource(Writer(), tmp_path)
    prompt = src.template.format(title="Lisbon", part=1)
    path = src._path(prompt)
    with open(path, "wb") as f:
        f.write(content.replace(b'"P"', json.dumps(prompt).encode()))
    with pytest.raises(CacheEntryError) as info:
        src.document("Lisbon", 0)
    msg = str(info.value)
    assert path in msg and "Lisbon" in msg and what in msg and "delete the file" in msg


@pytest.mark.parametrize("task", [t for t in TASKS if t != "kv"])  # the tasks with a varied haystack
def test_llm_text_naming_the_answer_is_dropped(tmp_path, task):
    """Cached or fresh LLM text that states the answer never reaches the haystack."""
    probe = generate(task, "fictional", n=1, context_tokens=300, seed=4)[0]
    if task == "summhay":  # an LLM document that states the insight would be citable
        stated = probe.meta["insight"]
    else:
        answer = probe.meta["hop_answers"][-1] if task == "musique" else probe.answer
        stated = f"Some say {answer} matters."
    fresh = LLMDocumentSource(Writer(stated), tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ex = generate(task, "fictional", n=1, context_tokens=300, seed=4, documents=fresh)[0]
    assert "People there like walking." in ex.prompt
    # only the needles carry the answer (summhay: one insight needle per cited document)
    assert ex.prompt.count(stated) == (len(ex.needles) if task == "summhay" else 0)
    # the same text read back from the cache is filtered the same way
    cached = LLMDocumentSource(lambda p: pytest.fail("cache miss"), tmp_path)
    assert generate(task, "fictional", n=1, context_tokens=300, seed=4, documents=cached)[0] == ex


def test_example_jsonl_bad_bytes_name_file_and_line(tmp_path):
    from rhlens.tasks import load_jsonl, save_jsonl

    good = generate("kv", "symbolic", n=2, context_tokens=64)
    save_jsonl(good, tmp_path / "set.jsonl")
    raw = (tmp_path / "set.jsonl").read_bytes()
    (tmp_path / "set.jsonl.gz").write_bytes(gzip.compress(raw))
    assert load_jsonl(tmp_path / "set.jsonl.gz") == good
    (tmp_path / "bad.jsonl").write_bytes(raw + b"\xff\n")
    with pytest.raises(UnreadableFileError, match="bad.jsonl, line 3: bytes are not UTF-8"):
        load_jsonl(tmp_path / "bad.jsonl")
    (tmp_path / "cut.jsonl.gz").write_bytes(gzip.compress(raw * 50)[:200])
    with pytest.raises(UnreadableFileError, match="cut.jsonl.gz, line 1: the .gz file is truncated"):
        load_jsonl(tmp_path / "cut.jsonl.gz")
