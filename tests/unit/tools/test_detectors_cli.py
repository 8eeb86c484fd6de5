"""``rhlens detectors``: a bad detector name is one line (exit 2) before loading anything; a run on
a tiny saved model writes detectors.json (agreement, curves) and the page."""

import json

from rhlens.cli import main
from rhlens.models import save_model, tiny_llama, word_level_tokenizer
from rhlens.tasks import generate, save_jsonl


def test_unknown_detector_is_one_line(tmp_path, capsys):
    assert main(["detectors", "--model", str(tmp_path / "nowhere"), "--task", "mdqa", "--detectors", "qrhead",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "qrhead" in err and "query_focus" in err
    assert not (tmp_path / "o").exists()


def test_run_writes_agreement_and_curves(tmp_path, capsys):
    examples = generate("mdqa", "symbolic", 3, context_tokens=64, seed=0)
    tok = word_level_tokenizer([e.prompt + e.completion for e in examples] + ["N/A"])
    save_model(tiny_llama(tokenizer=tok, n_layers=2, n_heads=4, seed=0), tmp_path / "m")
    save_jsonl(examples, tmp_path / "ex.jsonl")
    out = tmp_path / "o"
    assert main(["detectors", "--model", str(tmp_path / "m"), "--examples", str(tmp_path / "ex.jsonl"), "--detectors",
                 "forced,attention_mass,query_focus", "--ks", "1", "--n-random", "1", "--n-boot", "5",
                 "--out", str(out), "--no-progress"]) == 0
    got = json.loads((out / "detectors.json").read_text())
    assert [(r["a"], r["b"]) for r in got["agreement"]] == [
        ("forced", "attention_mass"), ("forced", "query_focus"), ("attention_mass", "query_focus")]
    assert set(got["drop"]) == {"forced", "attention_mass", "query_focus"} and len(got["random_drop"]) == 1
    assert (out / "detectors.html").is_file() and (out / "query_focus.safetensors").is_file()
    assert "Spearman" in capsys.readouterr().out
