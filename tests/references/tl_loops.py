"""Two slow loops over a TransformerLens model (a ``HookedTransformer``; the naive loop also a
``TransformerBridge``), the baselines of the tests and of ``bench/bench_scoring.py``. They import
no rhlens code: the model is called and its attention pattern hooked with TransformerLens's own
API (eager attention, ``blocks.L.attn.hook_pattern``, TransformerLens's key/value cache), and
everything else is :mod:`tests.references.wu_rule` (encoding, stop rule, span mapping, gate and
score assembly).

- :func:`naive_retrieval_scores`: one example at a time, no cache: every step re-runs the whole
  sequence, keeps the full ``hook_pattern`` of every layer and applies Wu's rule in Python loops.
- :func:`wu_port_scores`: a port of the loop in Wu et al.'s ``retrieval_head_detection.py``:
  prefill all but the last prompt token, then one token per step through the key/value cache,
  reading the new token's attention row of every layer; ``forced=True`` feeds the gold answer.
  It is the speed and memory baseline.

>>> from rhlens.models import tiny_llama, word_level_tokenizer
>>> from rhlens.tasks.example import Example
>>> prompt = "the key is red . Question : what is the key ? Answer :"
>>> ex = Example(prompt=prompt, answer="red", needles=((0, 14),), task="kv", variant="symbolic")
>>> model = tiny_llama(tokenizer=word_level_tokenizer([prompt]), seed=0)
>>> naive = naive_retrieval_scores(model, [ex], max_new_tokens=3, rouge_gate=None)
>>> port = wu_port_scores(model, [ex], max_new_tokens=3, rouge_gate=None)
>>> naive.hits.equal(port.hits), naive.responses == port.responses, naive.answer_tokens.tolist()
(True, True, [1])
"""

import contextlib

import torch

from tests.references import wu_rule


def _setup(model, examples, forced):
    tok = model.tokenizer
    encoded = [wu_rule.encode(tok, ex, forced=forced, bos=getattr(model.cfg, "default_prepend_bos", True))
               for ex in examples]
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    hits = torch.zeros(len(examples), n_layers, n_heads, dtype=torch.long)
    store = [None] * n_layers

    def save(pattern, hook, layer):
        store[layer] = pattern.detach().float().clone()

    fwd = [(f"blocks.{l}.attn.hook_pattern", lambda p, hook, l=l: save(p, hook, l)) for l in range(n_layers)]
    device = next(model.parameters()).device
    return tok, wu_rule.stop_ids(tok), device, encoded, hits, store, fwd


@contextlib.contextmanager
def _watching(model, fwd):
    """Eval and inference mode (the training flag restored) with the pattern hooks attached."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), model.hooks(fwd_hooks=fwd, reset_hooks_end=True):
            yield
    finally:
        model.train(was_training)


def forward(model, tokens, past_kv_cache=None):
    """Logits of ``tokens`` as given (no BOS added), through TransformerLens's cache when given."""
    if past_kv_cache is None:
        return model(tokens, return_type="logits", prepend_bos=False)
    return model(tokens, return_type="logits", prepend_bos=False, past_kv_cache=past_kv_cache)


def _new_cache(model):
    from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

    assert type(model).__name__ == "HookedTransformer", "the Wu port runs a HookedTransformer"
    return TransformerLensKeyValueCache.init_cache(model.cfg, next(model.parameters()).device, 1)


def naive_retrieval_scores(model, examples, *, method="decode", max_new_tokens=50, rouge_gate=0.5, top_k=1):
    """Wu's rule without cache, batching or reduction in hooks."""
    tok, stop, device, encoded, hits, store, fwd = _setup(model, examples, method == "forced")
    responses = []
    with _watching(model, fwd):
        for n, enc in enumerate(encoded):
            if method == "decode":
                seq, out = list(enc.prompt), []
                for _ in range(max_new_tokens):
                    token = int(forward(model, torch.tensor([seq], device=device))[0, -1].argmax())
                    wu_rule.count_step([p[0, :, -1] for p in store], token, enc, hits[n], top_k)
                    if token in stop:
                        break
                    out.append(token)
                    seq.append(token)
            else:
                seq = enc.prompt + enc.answer
                logits = forward(model, torch.tensor([seq], device=device))
                out = []
                for t in range(len(enc.prompt), len(seq)):
                    wu_rule.count_step([p[0, :, t - 1] for p in store], seq[t], enc, hits[n], top_k)
                    out.append(int(logits[0, t - 1].argmax()))
                out = out[: next((i for i, t in enumerate(out) if t in stop), len(out))]
            responses.append(wu_rule.response_text(tok, out))
    return wu_rule.finish(examples, encoded, hits, responses, rouge_gate, method=method, impl="naive")


def wu_port_scores(model, examples, *, forced=False, max_new_tokens=50, rouge_gate=0.5, top_k=1):
    """Wu et al.'s loop ported to TransformerLens (see the module docstring)."""
    tok, stop, device, encoded, hits, store, fwd = _setup(model, examples, forced)
    responses = []
    with _watching(model, fwd):
        for n, enc in enumerate(encoded):
            prompt_ids = torch.tensor(enc.prompt, device=device)
            copy = set(enc.copy)
            cache = _new_cache(model)
            if len(enc.prompt) > 1:
                forward(model, prompt_ids[None, :-1], past_kv_cache=cache)  # Wu's prefill: input_ids[:, :-1]
            inp = prompt_ids[-1]
            output = []
            for step in range(len(enc.answer) if forced else max_new_tokens):
                pred = forward(model, inp.view(1, 1), past_kv_cache=cache)[0, -1].argmax()
                inp = torch.tensor(enc.answer[step], device=device) if forced else pred
                output.append(int(pred))
                for layer in range(len(store)):  # Wu's retrieval_calculate, one head at a time
                    attention = store[layer][0]
                    for head in range(attention.shape[0]):
                        for i in attention[head][-1].topk(top_k).indices:
                            if int(i) in copy and inp.item() == prompt_ids[i].item():
                                hits[n, layer, head] += 1
                                break
                if not forced and inp.item() in stop:
                    break
            output = output[: next((i for i, t in enumerate(output) if t in stop), len(output))]
            responses.append(wu_rule.response_text(tok, output))
    return wu_rule.finish(examples, encoded, hits, responses, rouge_gate, method="forced" if forced else "decode",
                          impl="wu_port")
