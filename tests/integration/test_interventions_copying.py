"""Knockout finds copying heads: in a tiny model trained here, and in a real pretrained model."""

import contextlib

import pytest
import torch

from rhlens.adapter import count_hooks, forward, hook_name, hooks
from rhlens.encoding import pad_left
from rhlens.evaluation import evaluate
from rhlens.heads import Head
from rhlens.interventions import knockout, knockout_effect
from rhlens.models import tiny_llama, word_level_tokenizer
from rhlens.tasks import Example

NAMES = [f"n{i}" for i in range(12)]
FILLER = [f"w{i}" for i in range(20)]


def copy_batch(gen: torch.Generator, n: int, length: int = 12) -> list[list[str]]:
    """Rows of ``length`` filler words with one name somewhere, then ``Q`` and the name."""
    rows = []
    for _ in range(n):
        words = [FILLER[int(i)] for i in torch.randint(len(FILLER), (length,), generator=gen)]
        name = NAMES[int(torch.randint(len(NAMES), (1,), generator=gen))]
        words[int(torch.randint(length, (1,), generator=gen))] = name
        rows.append(words + ["Q", name])
    return rows


def train_copier():
    """A 1-layer attention-only model that copies the name after ``Q`` with head L0H0.

    Planted by training: 200 steps with heads 1-3 knocked out (only head 0 can learn to copy),
    then 100 steps with every head on and a group-lasso penalty on head outputs, so the other
    heads stay quiet but are trained with the full model. Seconds on a CPU.
    """
    tok = word_level_tokenizer(NAMES + FILLER + ["Q"])
    torch.manual_seed(0)
    model = tiny_llama(tokenizer=tok, n_layers=1, n_heads=4, d_model=32, d_head=8, attn_only=True, n_ctx=32, seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    seen: dict = {}
    model.train()
    for step in range(300):
        rows = copy_batch(gen, 32)
        x = torch.tensor([[tok.bos_token_id] + tok.convert_tokens_to_ids(r) for r in rows])
        others_off = knockout(model, ["L0H1", "L0H2", "L0H3"]) if step < 200 else contextlib.nullcontext()
        with others_off, hooks(model, [(hook_name("z", 0), lambda z, hook: seen.__setitem__("z", z))]):
            logits = model(x[:, :-1], return_type="logits")
        penalty = seen["z"][:, -1].norm(dim=-1).sum(-1).mean()
        loss = torch.nn.functional.cross_entropy(logits[:, -1], x[:, -1]) + 0.05 * penalty
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    examples = []
    for words in copy_batch(torch.Generator().manual_seed(1), 16):
        prompt = " ".join(words[:-1])
        start = prompt.index(words[-1])
        examples.append(Example(prompt, words[-1], ((start, start + len(words[-1])),), "niah", "synthetic"))
    return model, examples


@pytest.fixture(scope="module")
def copier():
    return train_copier()


def test_copying_head_found_by_knockout(copier):
    model, examples = copier
    base = evaluate(model, examples, metric="logprob", progress=False)
    assert base.score > -0.1  # the model copies
    deltas = {
        Head(0, h): knockout_effect(model, examples, [Head(0, h)], metric="logprob", baseline=base, progress=False).delta
        for h in range(4)
    }
    copier_head = min(deltas, key=deltas.get)
    assert copier_head == Head(0, 0)
    assert deltas[copier_head] < -2.0  # per example, log-prob of the name falls by > 2 nats
    assert all(abs(d) < 0.5 for h, d in deltas.items() if h != copier_head)
    for mode in ("mean", "uniform"):
        eff = knockout_effect(model, examples, [copier_head], mode=mode, reference=examples, metric="logprob", baseline=base, progress=False)
        assert eff.delta < -2.0, mode
    # greedy answers: exact match collapses too
    def em(pred, ex):
        return float(pred.split()[:1] == [ex.answer])
    gen = knockout_effect(model, examples, [copier_head], metric=em, max_new_tokens=1, progress=False)
    assert gen.baseline.score > 0.9 and gen.knocked.score < 0.5
    assert count_hooks(model) == 0


# --- TransformerBridge ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bridge_pair():
    from rhlens.models import as_bridge

    tok = word_level_tokenizer(["Ann lives in Rome . Bob lives in Oslo . Where does Ann live ? Answer:"])
    model = tiny_llama(tokenizer=tok, n_key_value_heads=2, seed=0)
    try:
        bridge = as_bridge(model)
    except ImportError as err:  # pragma: no cover - TransformerLens without the bridge
        pytest.skip(str(err))
    return model, bridge


@pytest.mark.parametrize("mode", ["zero", "uniform"])
def test_bridge_knockout_matches_hooked(bridge_pair, mode):
    model, bridge = bridge_pair
    tok = model.tokenizer
    batch = pad_left([tok("Ann lives in Rome . Bob")["input_ids"], tok("Where does Ann live ?")["input_ids"]], tok.pad_token_id)
    with torch.inference_mode():
        forward(bridge, batch.tokens, attention_mask=batch.attention_mask)  # the bridge wires its own hooks once
    baseline_hooks = count_hooks(bridge)
    out = {}
    for name, m in (("hooked", model), ("bridge", bridge)):
        with knockout(m, ["L0H1", "L1H2"], mode), torch.inference_mode():
            out[name] = forward(m, batch.tokens, attention_mask=batch.attention_mask)
    real = batch.attention_mask.bool()
    torch.testing.assert_close(out["bridge"][real], out["hooked"][real], rtol=1e-4, atol=1e-4)
    assert count_hooks(bridge) == baseline_hooks
    with pytest.raises(RuntimeError):
        with knockout(bridge, ["L0H0"], mode):
            raise RuntimeError("body failed")
    assert count_hooks(bridge) == baseline_hooks


def test_bridge_blocking_matches_hooked(bridge_pair):
    from rhlens.interventions import block_attention

    model, bridge = bridge_pair
    tokens = model.to_tokens("Ann lives in Rome . Bob lives in Oslo .")
    out = {}
    for name, m in (("hooked", model), ("bridge", bridge)):
        with block_attention(m, list(range(5, 10)), [1, 4], heads=["L0H0", "L1H3"]), torch.inference_mode():
            out[name] = forward(m, tokens)
    torch.testing.assert_close(out["bridge"], out["hooked"], rtol=1e-4, atol=1e-4)


# --- a real pretrained model -----------------------------------------------------------------

KATE_CONTEXTS = [
    "Once upon a time, there was a little girl named Kate. She had a cat. One day,",
    "Kate had a cat. The cat was soft and white. Every day,",
    "There was a girl named Kate. She liked to play with her doll. One day,",
    "Once upon a time, there was a little girl named Kate. She liked to play outside. One day, the sun was hot.",
    "Once upon a time, a girl called Kate went to the park. She saw a big tree. Then",
]


@pytest.mark.realdata
def test_real_model_name_copying_head(realdata):
    """stories260K (llama2.c TinyStories, 5 layers x 8 heads, GQA 4 kv heads) spells "Kate" as
    ``K`` ``at`` ``e``; after the name's first piece ``K`` the model copies ``at`` from the earlier
    mention. Zero-knockout of every head, one at a time, measured on five contexts: L4H1 is the
    copying head (the ``at`` log-prob falls by ~2.5 nats); no other head moves it by 1 nat."""
    from rhlens.models.hf import load_hf_checkpoint

    folder = realdata / "models" / "stories260K"
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    model = load_hf_checkpoint(folder)
    tok = model.tokenizer
    k_id, at_id = tok.convert_tokens_to_ids("K"), tok.convert_tokens_to_ids("at")
    rows = [tok(c)["input_ids"] + [k_id] for c in KATE_CONTEXTS]
    assert all(tok.convert_ids_to_tokens(r).count("K") == 2 for r in rows)  # the name, then its first piece
    batch = pad_left(rows, tok.pad_token_id)

    def at_logprob() -> torch.Tensor:
        with torch.inference_mode():
            logits = forward(model, batch.tokens, attention_mask=batch.attention_mask)[:, -1]
        return logits.log_softmax(-1)[:, at_id]

    base = at_logprob()
    assert base.mean() > -2.0
    drops = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            with knockout(model, [Head(layer, head)], "zero"):
                drops[layer, head] = (at_logprob() - base).mean()
    flat = int(drops.argmin())
    found = Head(flat // model.cfg.n_heads, flat % model.cfg.n_heads)
    assert found == Head(4, 1)
    assert drops[4, 1] < -2.0
    others = torch.cat([drops.flatten()[:flat], drops.flatten()[flat + 1 :]])
    assert others.min() > -1.0 and others.abs().median() < 0.2
    assert count_hooks(model) == 0


def test_bridge_patching_all_heads_gives_the_source(bridge_pair):
    """Cross-model patching between two bridges (decoding through the bridge key/value cache) that differ only
    in their query/key weights: patching every head everywhere reproduces the source."""
    from rhlens.evaluation import evaluate
    from rhlens.interventions import patch_heads
    from rhlens.interventions.head_sets import all_heads
    from rhlens.models import as_bridge

    model, source = bridge_pair
    twin = tiny_llama(tokenizer=model.tokenizer, n_key_value_heads=2, seed=0)
    twin.load_state_dict(model.state_dict())
    with torch.no_grad():
        for block in twin.blocks:
            block.attn.W_Q.mul_(-2.0)
    target = as_bridge(twin)
    prompt = "Ann lives in Rome . Bob lives in Oslo . Where does Ann live ? Answer:"
    examples = [Example(prompt, "Rome", ((13, 17),), "niah", "real"), Example(prompt[4:], "Oslo", ((9, 13),), "niah", "real")]
    src = evaluate(source, examples, metric="logprob", progress=False)
    res = patch_heads(source, target, examples, all_heads(target), metric="logprob", progress=False)
    assert (res.baseline.per_example - src.per_example).abs().max() > 1e-3
    torch.testing.assert_close(res.patched.per_example, src.per_example, rtol=0, atol=1e-4)
    def noop(p, ex):
        return 0.0
    gen = patch_heads(source, target, examples, all_heads(target), metric=noop, max_new_tokens=3, chunk_size=6, progress=False)
    assert gen.patched.predictions == evaluate(source, examples, metric=noop, max_new_tokens=3, progress=False).predictions
