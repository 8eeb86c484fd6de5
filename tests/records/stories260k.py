"""stories260K's retrieval scores and greedy predictions, as JSON-ready numbers (for item 6 of issue 25).

:func:`stories260k_results` loads the checkpoint with :func:`rhlens.load_hf_checkpoint` (a
HookedTransformer on TransformerLens 3, a TransformerBridge on 4) and returns decode and forced
scores ``[n_layers][n_heads]``, the decoded responses and the greedy continuations of each prompt.
"""

import importlib.metadata
from pathlib import Path

from rhlens.tasks.example import Example

STORIES = [
    ("Once upon a time, there was a little girl named Lily. She had a big red ball. One day, Lily went to the park with her", "red ball"),
    ("Tom and his dog Max liked to play in the garden. Every day, Tom threw a stick and", "Max"),
    ("There was a cat named Tim. Tim loved to eat fish. One day, Tim saw a big", "fish"),
]


def stories_examples() -> list[Example]:
    out = []
    for prompt, needle in STORIES:
        s = prompt.index(needle)
        out.append(Example(prompt=prompt, answer=needle, needles=((s, s + len(needle)),), task="niah", variant="real"))
    return out


def stories260k_results(folder: Path) -> dict:
    from rhlens.decoding import greedy_decode
    from rhlens.models import load_hf_checkpoint
    from rhlens.scoring import retrieval_scores

    model = load_hf_checkpoint(folder)
    out: dict = {"transformer_lens": importlib.metadata.version("transformer-lens"), "model_class": type(model).__name__}
    for method in ("decode", "forced"):
        res = retrieval_scores(model, stories_examples(), method=method, max_new_tokens=12, rouge_gate=None,
                               batch_size=3, chunk_size=8, progress=False)
        out[method] = {"scores": res.scores.tolist(), "hits": res.trials.hits.sum().item(), "responses": list(res.trials.responses)}
    prompts = [model.tokenizer(p)["input_ids"] for p, _ in STORIES]
    out["greedy"] = [list(map(int, row)) for row in greedy_decode(model, prompts, max_new_tokens=12).tokens]
    return out
