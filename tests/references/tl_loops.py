"""Two slow loops over an rhlens (TransformerLens) model, the baselines of the tests and of
``bench/bench_scoring.py``. They call the model and hook its attention pattern through
:mod:`rhlens.adapter`, and do everything else with :mod:`tests.references.wu_rule` (no rhlens
encoding, stop rule, span mapping, gate or score assembly).

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

import torch

from rhlens.adapter import analysis_mode, forward, hook_name, hooks, model_device, new_kv_cache, prepends_bos, tokenizer_of
from tests.references import wu_rule


def _setup(model, examples, forced):
    tok = tokenizer_of(model)
    encoded = [wu_rule.encode(tok, ex, forced=forced, bos=prepends_bos(model)) for ex in examples]
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    hits = torch.zeros(len(examples), n_layers, n_heads, dtype=torch.long)
    store = [None] * n_layers

    def save(pattern, hook, layer):
        store[layer] = pattern.detach().float().clone()

    fwd = [(hook_name("pattern", l), lambda p, hook, l=l: save(p, hook, l)) for l in range(n_layers)]
    return tok, wu_rule.stop_ids(tok), model_device(model), encoded, hits, store, fwd


def naive_retrieval_scores(model, examples, *, method="decode", max_new_tokens=50, rouge_gate=0.5, top_k=1):
    """Wu's rule without cache, batching or reduction in hooks."""
    tok, stop, device, encoded, hits, store, fwd = _setup(model, examples, method == "forced")
    responses = []
    with analysis_mode(model), hooks(model, fwd):
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
    with analysis_mode(model), hooks(model, fwd):
        for n, enc in enumerate(encoded):
            prompt_ids = torch.tensor(enc.prompt, device=device)
            copy = set(enc.copy)
            cache = new_kv_cache(model, 1)
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
