"""Numbers on the command line (issue 22 items 10 and 16): ``--n 0`` (every example) and ``--n -1``
(all but the last), a ``--threshold`` outside [0, 1] or NaN, a negative ``--n-random`` are refused
by the parser, before any file is read."""

import pytest

from rhlens.cli import main

PIECES = {
    "scores": ["scores", "--model", "m", "--examples", "e.jsonl", "--out", "o"],
    "knockout": ["knockout", "--model", "m", "--examples", "e.jsonl", "--scores", "s.safetensors", "--out", "o"],
    "patch": ["patch", "--source", "a", "--target", "b", "--examples", "e.jsonl", "--out", "o"],
}


@pytest.mark.parametrize("piece", sorted(PIECES))
@pytest.mark.parametrize("option, value, message", [
    ("--n", "0", "must be an integer of at least 1, got 0"),
    ("--n", "-1", "must be an integer of at least 1, got -1"),
    ("--threshold", "2", "must be a number from 0 to 1, got 2"),
    ("--threshold", "nan", "must be a number from 0 to 1, got nan"),
])
def test_out_of_range_numbers_are_refused_by_the_parser(piece, option, value, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*PIECES[piece], option, value])
    assert exit_.value.code == 2
    assert f"argument {option}: {message}" in capsys.readouterr().err


@pytest.mark.parametrize("piece", ["knockout", "patch"])
def test_a_negative_n_random_is_refused(piece, capsys):
    with pytest.raises(SystemExit):
        main([*PIECES[piece], "--n-random", "-2"])
    assert "argument --n-random: must be an integer of at least 0, got -2" in capsys.readouterr().err
