"""A record file's lines and size are capped before anything is kept or tokenized (issue 22 item
18: a 1 MB .jsonl.gz holding one 1 GiB line took 5.8 GB and ended in a Rust panic)."""

import gzip
import json

import pytest

from rhlens.tasks import load_jsonl, records
from rhlens.tasks.loaders import load_lost_in_the_middle_qa


def test_a_line_over_the_cap_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "MAX_LINE_BYTES", 1000)
    path = tmp_path / "huge.jsonl.gz"
    with gzip.open(path, "wb") as f:
        f.write(b'{"question": "' + b"a" * 5000 + b'"}\n')
    for load in (load_jsonl, load_lost_in_the_middle_qa):
        with pytest.raises(records.UnreadableFileError, match=r"huge.jsonl.gz, line 1: longer than 1000 bytes"):
            load(path)


def test_a_file_over_the_cap_is_one_clear_error(tmp_path, monkeypatch):
    record = json.dumps({"question": "q?", "answers": ["Rome"], "ctxs": [{"title": "D", "text": "Rome is here.", "isgold": True}]})
    monkeypatch.setattr(records, "MAX_FILE_BYTES", 2 * len(record) + 10)
    path = tmp_path / "big.jsonl"
    path.write_text((record + "\n") * 10)
    with pytest.raises(records.UnreadableFileError, match=r"big.jsonl: more than \d+ bytes of text .* by line 3"):
        load_lost_in_the_middle_qa(path)
