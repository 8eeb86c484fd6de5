"""Wu et al.'s retrieval score on a Hugging Face ``LlamaForCausalLM`` with eager attention, sharing
no rhlens code (encoding, stop, gate and hit rule from :mod:`tests.references.wu_rule`).

Decode (Wu's ``decode`` + ``retrieval_calculate``): prefill ``prompt[:-1]`` into the cache, then
one forward per step starting with the last prompt token, ``output_attentions=True``; at each
step (step 0 included) score every head's last-query row against the greedy token, and stop after
scoring the step that produced a stop token or after ``max_new_tokens`` steps. Forced: one forward
over prompt + answer + EOS; row ``t - 1`` is scored against the gold token ``t``.
"""

import torch

from tests.references import wu_rule


def _load(model):
    assert model.config._attn_implementation == "eager", "the reference needs eager attention (attention weights)"
    return model


@torch.no_grad()
def hf_wu_scores(model, tokenizer, examples, *, method="decode", max_new_tokens=50, rouge_gate=0.5, top_k=1):
    """Reference scores of a ``transformers`` causal LM loaded with ``attn_implementation="eager"``."""
    from transformers import DynamicCache

    model = _load(model).eval()
    cfg = model.config
    stop = wu_rule.stop_ids(tokenizer)
    encoded = [wu_rule.encode(tokenizer, ex, forced=method == "forced") for ex in examples]
    hits = torch.zeros(len(examples), cfg.num_hidden_layers, cfg.num_attention_heads, dtype=torch.long)
    responses = []
    for n, enc in enumerate(encoded):
        if method == "decode":
            prompt = torch.tensor([enc.prompt])
            cache = DynamicCache()
            if prompt.shape[1] > 1:
                model(prompt[:, :-1], cache=cache, use_cache=True)
            inp, out = prompt[:, -1:], []
            for _ in range(max_new_tokens):
                res = model(inp, cache=cache, use_cache=True, output_attentions=True)
                token = int(res.logits[0, -1].argmax())
                wu_rule.count_step([a[0, :, -1].float() for a in res.attentions], token, enc, hits[n], top_k)
                if token in stop:
                    break
                out.append(token)
                inp = torch.tensor([[token]])
        else:
            seq = enc.prompt + enc.answer
            res = model(torch.tensor([seq]), output_attentions=True)
            out = []
            for t in range(len(enc.prompt), len(seq)):
                wu_rule.count_step([a[0, :, t - 1].float() for a in res.attentions], seq[t], enc, hits[n], top_k)
                out.append(int(res.logits[0, t - 1].argmax()))
            out = out[: next((i for i, t in enumerate(out) if t in stop), len(out))]
        responses.append(wu_rule.response_text(tokenizer, out))
    return wu_rule.finish(examples, encoded, hits, responses, rouge_gate, method=method, impl="hf_eager")
