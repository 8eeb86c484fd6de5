"""Issue 26 item 4: what README's Python reader meets (best-first heads, short JSON numbers,
subpackages after a bare ``import rhlens``)."""

import json
import subprocess
import sys

import torch

from rhlens.files import float32_short, write_json_atomic
from rhlens.heads import HeadSet
from rhlens.scoring import HeadScores


def test_top_ordered_is_best_first_and_sets_stay_sets():
    scores = HeadScores(torch.tensor([[[0.2, 0.0, 0.5], [0.9, 0.4, 0.1]]]))
    top = scores.top(3)
    assert [str(h) for h in top.ordered()] == ["L1H0", "L0H2", "L1H1"]
    assert top == HeadSet(["L0H2", "L1H0", "L1H1"]) and repr(top) == "HeadSet([L0H2, L1H0, L1H1])"
    assert [str(h) for h in (top | {"L0H0"}).ordered()] == ["L0H0", "L0H2", "L1H0", "L1H1"]  # a plain set again
    assert [str(h) for h in HeadSet(["L1H0", "L0H2"]).ordered()] == ["L0H2", "L1H0"]


def test_json_floats_are_written_as_float32_holds_them(tmp_path):
    value = float(torch.tensor(0.84))  # 0.8399999737739563
    write_json_atomic(tmp_path / "x.json", {"a": value, "b": [value, 1.5], "c": 1733580000.123, "d": 1 / 3})
    text = (tmp_path / "x.json").read_text()
    assert '"a": 0.84' in text and "0.8399999" not in text
    back = json.loads(text)
    assert torch.tensor(back["a"]) == torch.tensor(value)  # the same float32
    assert back["c"] == 1733580000.123 and back["d"] == 1 / 3  # floats float32 cannot hold keep every digit
    assert float32_short(float("inf")) == float("inf")


def test_subpackages_after_a_bare_import():
    code = "import rhlens; print(rhlens.models.base_card().splitlines()[0], 'models' in dir(rhlens))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["#", "rhlens-base", "True"]
