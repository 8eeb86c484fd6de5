# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · A first look: the base model and its retrieval heads
#
# A *retrieval head* (Wu et al., 2024) is an attention head that, while the model writes an
# answer, looks at the very token of the context it is about to copy. This tutorial loads the
# small model that ships with rhlens, asks it questions about a long context, scores every head's
# retrieval ability, draws the scores as a heatmap, and knocks the best heads out to see whether
# the model still answers.
#
# Runs in well under a minute on a laptop CPU. Open it as a notebook with
# `jupytext --to notebook tutorials/01_first_look.py`, or run it as a script.

# %%
import os

# The test suite sets RHLENS_TUTORIAL_SIZE=tiny to run every tutorial small and fast.
SIZE = os.environ.get("RHLENS_TUTORIAL_SIZE", "full")
N_EXAMPLES = {"tiny": 8, "full": 60}[SIZE]
N_RANDOM_DRAWS = {"tiny": 2, "full": 5}[SIZE]

import plotly.io as pio

pio.renderers.default = "plotly_mimetype+notebook"  # figures show in Jupyter, VS Code and the docs

import rhlens
from rhlens import plot

# %% [markdown]
# ## The embedded base model
#
# `rhlens.load_base()` loads a tiny Llama-shaped `HookedTransformer` trained by rhlens itself on
# the question-and-answer forms of its tasks (its card: `rhlens.models.base_card()`). It stands in
# for the short-context models of the paper, at a size a CPU fine-tunes in minutes.

# %%
model = rhlens.load_base()
cfg = model.cfg
print(f"{cfg.n_layers} layers x {cfg.n_heads} heads (d_head {cfg.d_head}), context {cfg.n_ctx} tokens, "
      f"vocabulary {cfg.d_vocab}")

# %% [markdown]
# ## A long-context task
#
# Multi-document QA: several short documents, one of which holds the answer (the *needle*), then a
# question. `rhlens.generate` writes such examples; `"realistic"` means real-looking entities and
# varied documents. Each `Example` records where the needle (the evidence) sits in the prompt, and
# the answer span inside it that a retrieval head copies (character spans).

# %%
examples = rhlens.generate("mdqa", "realistic", n=N_EXAMPLES, context_tokens=128, seed=0)
ex = examples[0]
print(ex.prompt[-400:])
print("\nneedle      :", [ex.prompt[s:e] for s, e in ex.needles])
print("answer span :", [ex.prompt[s:e] for s, e in getattr(ex, "answer_spans", ())])
print("answer      :", ex.answer)

# %%
baseline = rhlens.evaluate(model, examples, progress=False)
print(f"exact match without fine-tuning: {baseline.score:.2f}")
print("first predictions:", baseline.predictions[:4], "gold:", [e.answer for e in examples[:4]])

# %% [markdown]
# ## Retrieval scores
#
# `rhlens.retrieval_scores` decodes each answer greedily. At every generated token, a head whose
# strongest attention lands on the context token being copied (inside the needle's answer span)
# earns a point; a head's score is its share of answer tokens, averaged over the examples the
# model got right (ROUGE recall over 0.5). Heads over 0.1 are Wu et al.'s retrieval heads.

# %%
scores = rhlens.retrieval_scores(model, examples, method="decode", progress=False)
print(scores)
retrieval_heads = scores.above(0.1)
print("retrieval heads (score > 0.1):", retrieval_heads)
for head in scores.top(5).ordered():
    print(f"  {head}: {scores.scores[head.layer, head.head]:.3f}")

# %% [markdown]
# Hover over a cell to read its head (`L1H3`: layer 1, head 3) and score.

# %%
plot.head_heatmap(scores, title="retrieval score of each head (mdqa, realistic, 128 tokens)")

# %% [markdown]
# ## Does the model need these heads?
#
# A knockout sets chosen heads' outputs to zero while the model answers. If the retrieval heads
# carry the copying, knocking them out should hurt far more than knocking out as many random
# heads (drawn from the heads that are *not* retrieval heads, as Wu et al. do).

# %%
knocked = retrieval_heads if retrieval_heads else scores.top(2)  # tiny runs may find none over 0.1
effect = rhlens.knockout_effect(model, examples, knocked, mode="zero", baseline=baseline, progress=False)
n_free = cfg.n_layers * cfg.n_heads - len(knocked)
controls = [
    rhlens.knockout_effect(model, examples, rhlens.random_heads(model, min(len(knocked), n_free), knocked, seed=s),
                           mode="zero", baseline=baseline, progress=False)
    for s in range(N_RANDOM_DRAWS)
]
print(f"intact: {baseline.score:.2f}")
print(f"without {knocked}: {effect.knocked.score:.2f} (delta {effect.delta:+.2f})")
for c in controls:
    print(f"without {c.heads}: {c.knocked.score:.2f} (delta {c.delta:+.2f})")

# %%
plot.knockout_bars({"mdqa": {"retrieval": effect, "random": controls}},
                   title=f"knocking out {len(knocked)} heads: retrieval heads against random ones")

# %% [markdown]
# Next: tutorial 02 (`02_synthetic_data.py`) shows the tasks and the variants the paper
# fine-tunes on; tutorial 03 (`03_real_vs_synthetic.py`) fine-tunes the base on them and compares heads.
