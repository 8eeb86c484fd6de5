"""Retrieval scores on a real pretrained checkpoint (stories260K) equal the naive reference."""

import pytest
import torch

from rhlens.scoring import retrieval_scores
from tests.references.tl_loops import naive_retrieval_scores
from rhlens.tasks.example import Example

STORIES = [
    ("Once upon a time, there was a little girl named Lily. She had a big red ball. One day, Lily went to the park with her", "red ball"),
    ("Tom and his dog Max liked to play in the garden. Every day, Tom threw a stick and", "Max"),
    ("There was a cat named Tim. Tim loved to eat fish. One day, Tim saw a big", "fish"),
]


@pytest.fixture(scope="module")
def stories_model(realdata):
    path = realdata / "models" / "stories260K"
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    from rhlens.models import load_hf_checkpoint

    return load_hf_checkpoint(path)


def examples():
    out = []
    for prompt, needle in STORIES:
        s = prompt.index(needle)
        out.append(Example(prompt=prompt, answer=needle, needles=((s, s + len(needle)),), task="niah", variant="real"))
    return out


@pytest.mark.realdata
@pytest.mark.parametrize("method", ["decode", "forced"])
def test_real_checkpoint_equals_naive_reference(stories_model, method):
    fast = retrieval_scores(stories_model, examples(), method=method, max_new_tokens=12, rouge_gate=None,
                            batch_size=3, chunk_size=8, progress=False)
    slow = naive_retrieval_scores(stories_model, examples(), method=method, max_new_tokens=12, rouge_gate=None)
    assert fast.trials.hits.sum() > 0
    assert fast.trials.hits.equal(slow.trials.hits)
    assert fast.trials.responses == slow.trials.responses
    torch.testing.assert_close(fast.scores, slow.scores)
    assert fast.scores.shape == (5, 8) and fast.by_kv_group().shape == (5, 4)
