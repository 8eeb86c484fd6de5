"""Generation shows its progress (issue 22 item 19: n_train = 20000 spent minutes in the study's
data stage with no output); the bar can be switched off."""

from rhlens.tasks import generate


def test_generate_has_a_bar_that_can_be_switched_off(capsys, monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    shown = generate("kv", "symbolic", 3, context_tokens=64, seed=0, progress=True)
    err = capsys.readouterr().err
    assert "generate kv/symbolic" in err and "/3 " in err
    quiet = generate("kv", "symbolic", 3, context_tokens=64, seed=0)
    assert capsys.readouterr().err == "" and quiet == shown
