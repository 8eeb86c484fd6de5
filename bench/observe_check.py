"""Does observing attention change what is observed? (issue 21 item 1)

On stories260K (``--model``, default ``../shared/realdata/models/stories260K``) in float32,
bfloat16 and float16, for 40 name-copy prompts, prints per dtype:

- ``decode_vs_evaluate``: how many of ``retrieval_scores(method="decode")``'s responses differ from
  ``evaluate``'s predictions (same prompts, batch size, decoding budget);
- ``pattern_hook``: how many ``evaluate`` predictions change when a read-only ``hook_pattern`` hook
  is attached to every layer.

Both should be 0. Run: ``python bench/observe_check.py`` (CPU, under a minute; times are not measured).
"""

import argparse
from pathlib import Path

import torch

NAMES = ["Lily", "Tom", "Max", "Sue", "Ben", "Anna", "Tim", "Mia", "Sam", "Lucy"]
TEMPLATES = [
    "Once upon a time, there was a boy named {n}. He had a big red ball.\nOne day,",
    "{n} and her mom went to the park. They saw a big tree.\n{n} said,",
    "There was a little girl called {n}. She liked to play with her dog.",
    "One day, {n} found a shiny stone in the garden. {n} was very happy and",
]


def examples():
    from rhlens.tasks import Example

    out = []
    for template in TEMPLATES:
        for name in NAMES:
            prompt = template.format(n=name)
            s = prompt.index(name)
            out.append(Example(prompt=prompt, answer=name, needles=((s, s + len(name)),), task="niah", variant="real",
                               answer_spans=((s, s + len(name)),)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(Path(__file__).resolve().parents[2] / "shared/realdata/models/stories260K"))
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()

    import rhlens
    from rhlens.adapter import architecture, hook_name, hooks

    exs = examples()
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        model = rhlens.load_hf_checkpoint(args.model, dtype=dtype)
        opts = dict(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, progress=False)
        plain = rhlens.evaluate(model, exs, metric=lambda p, ex: 0.0, **opts).predictions
        scores = rhlens.retrieval_scores(model, exs, method="decode", rouge_gate=None, **opts)
        n_layers = architecture(model).n_layers
        with hooks(model, [(hook_name("pattern", l), lambda p, hook: None) for l in range(n_layers)]):
            hooked = rhlens.evaluate(model, exs, metric=lambda p, ex: 0.0, **opts).predictions
        differ = sum(a != b for a, b in zip(plain, scores.trials.responses))
        changed = sum(a != b for a, b in zip(plain, hooked))
        print(f"{str(dtype).removeprefix('torch.'):9s} decode_vs_evaluate {differ:2d} of {len(exs)}   "
              f"pattern_hook {changed:2d} of {len(exs)}")


if __name__ == "__main__":
    main()
