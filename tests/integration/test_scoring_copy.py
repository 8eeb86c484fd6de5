"""A model trained here to copy from context gets clearly higher retrieval scores on its copying
heads than on every other head.

A 2-layer tiny Llama learns to repeat a random block of ``PERIOD`` words (``BOS a a``) in ~150
AdamW steps (seconds on CPU). With a fixed period it learns a fixed-offset copying head (query
``i`` attends to position ``i - PERIOD + 1``, which holds the next token to write): exactly the
attention Wu et al.'s score looks for. The copying heads are identified independently of retrieval
scores, from their attention on a repeated block (with this recipe all of layer 1 copies); their
retrieval scores must be over 0.5 and over twice every other head's.
"""

import random

import pytest
import torch

from rhlens.adapter import hook_name, hooks
from rhlens.heads import HeadSet
from rhlens.models import tiny_llama, word_level_tokenizer
from rhlens.scoring import retrieval_scores
from rhlens.tasks.example import Example
from tests.references.tl_loops import naive_retrieval_scores

WORDS = [f"w{i}" for i in range(40)]
PERIOD = 20


def _train_copy_model(steps: int = 150, seed: int = 0):
    torch.manual_seed(seed)
    tok = word_level_tokenizer(WORDS + ["\n"])
    model = tiny_llama(tokenizer=tok, seed=seed, n_layers=2, n_heads=4, d_model=64, n_ctx=128)
    ids = torch.tensor(tok.convert_tokens_to_ids(WORDS))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    bos = torch.full((32, 1), tok.bos_token_id)
    model.train()
    for _ in range(steps):
        block = ids[torch.randint(0, len(ids), (32, PERIOD), generator=gen)]
        seq = torch.cat([bos, block, block], dim=1)
        logits = model(seq, return_type="logits")
        loss = torch.nn.functional.cross_entropy(
            logits[:, PERIOD + 1 : -1].reshape(-1, logits.shape[-1]), seq[:, PERIOD + 2 :].reshape(-1)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model, tok


def _copying_heads(model, tok) -> HeadSet:
    """Heads that, on a repeated random block, put most attention on the token to be written next
    (query ``i`` of the second copy on position ``i - PERIOD + 1``); found without any scores."""
    g = torch.Generator().manual_seed(123)
    ids = torch.tensor(tok.convert_tokens_to_ids(WORDS))
    block = ids[torch.randperm(len(ids), generator=g)[:PERIOD]][None]
    seq = torch.cat([torch.tensor([[tok.bos_token_id]]), block, block], dim=1)
    q = torch.arange(PERIOD + 1, 2 * PERIOD)
    rows = {}

    def save(pattern, hook, layer):
        rows[layer] = pattern[0][:, q, q - PERIOD + 1].mean(dim=-1)  # [head]

    fwd = [(hook_name("pattern", l), lambda p, hook, l=l: save(p, hook, l)) for l in range(model.cfg.n_layers)]
    with torch.no_grad(), hooks(model, fwd):
        model(seq)
    return HeadSet.above(torch.stack([rows[l] for l in range(model.cfg.n_layers)]), 0.5)


def _needle_examples(n: int, seed: int = 0) -> list[Example]:
    """prompt = block + the block again up to the needle's first word, where block = hay +
    needle + hay (``PERIOD`` words); the model should continue with the rest of the needle."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        needle_words = rng.sample(WORDS[:20], 6)
        k = rng.randint(2, PERIOD - 8)
        before = [rng.choice(WORDS[20:]) for _ in range(k)]
        after = [rng.choice(WORDS[20:]) for _ in range(PERIOD - 6 - k)]
        block = " ".join(before + needle_words + after)
        prompt = f"{block} {' '.join(before + needle_words[:1])}"
        start = len(" ".join(before)) + 1
        needle = " ".join(needle_words)
        answer = " ".join(needle_words[1:])  # the copied part of the needle
        end = start + len(needle)
        out.append(
            Example(prompt=prompt, answer=answer, needles=((start, end),), task="niah", variant="symbolic",
                    answer_spans=((end - len(answer), end),))
        )
    return out


@pytest.fixture(scope="module")
def copy_model():
    return _train_copy_model()


@pytest.mark.slow
def test_copying_head_scores_highest(copy_model):
    model, tok = copy_model
    examples = _needle_examples(12)
    scores = retrieval_scores(model, examples, max_new_tokens=6, batch_size=5, chunk_size=16, progress=False)
    assert scores.n_counted >= 10, scores.trials.responses  # the model does copy the needle
    copying = _copying_heads(model, tok)
    assert 0 < len(copying) < model.cfg.n_layers * model.cfg.n_heads
    s = scores.scores
    mask = copying.mask(*s.shape)
    assert s[mask].min() > 0.5
    assert s[mask].min() > 2 * s[~mask].max()
    assert scores.above(0.5) == copying
    forced = retrieval_scores(model, examples, method="forced", batch_size=5, chunk_size=16, progress=False)
    assert forced.above(0.5) == copying


@pytest.mark.slow
def test_copy_model_matches_naive_reference(copy_model):
    model, _ = copy_model
    examples = _needle_examples(5, seed=1)
    for method in ("decode", "forced"):
        fast = retrieval_scores(model, examples, method=method, max_new_tokens=6, batch_size=3, chunk_size=9, progress=False)
        slow = naive_retrieval_scores(model, examples, method=method, max_new_tokens=6)
        assert fast.trials.hits.equal(slow.trials.hits)
        assert fast.trials.responses == slow.trials.responses
        assert fast.counted.equal(slow.counted)
        torch.testing.assert_close(fast.scores, slow.scores)
