"""Helpers for the intervention tests: tiny models and a handful of examples over one vocabulary."""

import pytest
import torch

from rhlens.adapter import forward
from rhlens.models import tiny_llama, word_level_tokenizer
from rhlens.tasks import Example

PROMPTS = [
    ("Ann lives in Rome . Bob lives in Oslo .\nQuestion: Where does Ann live ?\nAnswer:", "Rome"),
    ("Cat sat on the mat .\nQuestion: Where did the cat sit ?\nAnswer:", "mat"),
    ("The key blue maps to seven . The key red maps to nine .\nQuestion: What does red map to ?\nAnswer:", "nine"),
    ("Dan owns a red car .\nQuestion: What colour is the car ?\nAnswer:", "red"),
]


def build_examples(n: int = 4) -> list[Example]:
    out = []
    for prompt, answer in (PROMPTS * ((n + len(PROMPTS) - 1) // len(PROMPTS)))[:n]:
        start = prompt.index(" " + answer) + 1 if (" " + answer) in prompt else prompt.index(answer)
        out.append(Example(prompt, answer, ((start, start + len(answer)),), "niah", "real"))
    return out


@pytest.fixture(scope="session")
def tok():
    return word_level_tokenizer([p + " " + a for p, a in PROMPTS])


@pytest.fixture
def examples() -> list[Example]:
    return build_examples()


@pytest.fixture
def make_model(tok):
    """``make_model(**overrides)``: a tiny Llama (2 layers x 4 heads) over ``tok``."""

    def build(**overrides):
        kw = dict(seed=0)
        kw.update(overrides)
        return tiny_llama(tokenizer=tok, **kw)

    return build


@pytest.fixture
def logits_of():
    """``logits_of(model, tokens, mask=None)`` under inference mode."""

    def run(model, tokens, mask=None):
        with torch.inference_mode():
            return forward(model, tokens, attention_mask=mask)

    return run
