"""Wu et al.'s score files with values a retrieval score cannot take (issue 22 item 16): over 1,
negative, NaN or not numbers are refused naming the file and head."""

import json

import pytest

from rhlens.scoring import HeadScores


@pytest.mark.parametrize("value", [1.5, -0.1, float("nan"), "0.5"])
def test_scores_outside_0_to_1_are_refused_naming_the_head(tmp_path, value):
    path = tmp_path / "wu.json"
    path.write_text(json.dumps({"0-0": [0.5, 0.25], "0-1": [0.0, value]}))
    with pytest.raises(ValueError, match=r"wu.json: head 0-1 (has score|holds)"):
        HeadScores.from_wu_json(path)
    path.write_text(json.dumps({"0-0": [0.5, 0.25], "0-1": [0.0, 1.0]}))
    assert HeadScores.from_wu_json(path).scores.tolist() == [[0.375, 0.5]]
