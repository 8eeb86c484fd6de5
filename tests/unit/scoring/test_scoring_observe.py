"""Observing attention does not change the run (issue 21 item 1): on the fused path a read-only
``hook_pattern`` hook leaves every output bit unchanged, an editing one still edits, and in
bfloat16 and float16 ``retrieval_scores(method="decode")`` decodes exactly ``evaluate``'s
predictions. ``bench/observe_check.py`` prints the same counts on stories260K."""

import pytest
import torch

from rhlens import evaluate, retrieval_scores
from rhlens.adapter import hook_name, hooks
from rhlens.adapter.fused import fused_attention
from rhlens.models import tiny_llama, word_level_tokenizer
from rhlens.tasks import generate

WORDS = [f"w{i}" for i in range(40)]


def low_precision_model(dtype):
    tok = word_level_tokenizer([" ".join(WORDS)])
    return tiny_llama(tokenizer=tok, seed=3, n_layers=2, d_model=64, n_heads=4, n_key_value_heads=2).to(dtype, print_details=False), tok


def prompts(tok, n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(4, len(tok), (int(l),), generator=g) for l in torch.randint(6, 30, (n,), generator=g)]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_read_only_pattern_hook_changes_no_output_bit(dtype):
    model, tok = low_precision_model(dtype)
    seen = []
    for ids in prompts(tok, n=6):
        with fused_attention(model):
            plain = model(ids[None])
            with hooks(model, [(hook_name("pattern", l), lambda p, hook: seen.append(p.shape)) for l in range(2)]):
                watched = model(ids[None])
        assert torch.equal(plain, watched)
    assert len(seen) == 12 and seen[0][1] == 4  # every layer observed, per query head


def test_editing_pattern_hook_still_edits():
    model, tok = low_precision_model(torch.float32)
    ids = prompts(tok, n=1)[0][None]

    def uniform(p, hook):
        allowed = p > 0
        return allowed / allowed.sum(-1, keepdim=True)

    with fused_attention(model), hooks(model, [(hook_name("pattern", 0), uniform)]):
        fused = model(ids)
    with hooks(model, [(hook_name("pattern", 0), uniform)]):
        eager = model(ids)
    assert not torch.allclose(fused, model(ids), atol=1e-3)
    torch.testing.assert_close(fused, eager, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_decode_scores_follow_the_run_evaluate_makes(dtype):
    from rhlens.models import load_base

    model = load_base().to(dtype, print_details=False)
    examples = generate("kv", "symbolic", n=24, context_tokens=96, seed=5)
    opts = dict(max_new_tokens=8, batch_size=6, progress=False)
    predictions = evaluate(model, examples, metric=lambda p, ex: 0.0, **opts).predictions
    scores = retrieval_scores(model, examples, method="decode", rouge_gate=None, **opts)
    assert scores.trials.responses == predictions
