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
# # 03 · Real versus synthetic fine-tuning: head recall predicts accuracy
#
# The paper's central measurement, in miniature. Fine-tune copies of one base model, each on a
# different training set (the real task, and synthetic variants of it), then for every copy
#
# 1. evaluate it on the **real** task,
# 2. find its retrieval heads on the real task,
# 3. measure the **recall** of the real-data model's retrieval heads among its own.
#
# Zhao et al. find that the synthetic models whose retrieval heads overlap the real model's more
# also score better on the real task. Here the "real" data is rhlens's `realistic` MDQA variant
# (the stand-in rhlens's study uses when no real files are given; `rhlens.tasks.loaders` reads the
# real formats). At full size this takes a few minutes on a laptop CPU; it is a small experiment,
# so expect noisy numbers; `rhlens study` runs the full version.

# %%
import os

SIZE = os.environ.get("RHLENS_TUTORIAL_SIZE", "full")
STEPS = {"tiny": 2, "full": 120}[SIZE]
BATCH = {"tiny": 4, "full": 16}[SIZE]
N_TEST = {"tiny": 6, "full": 50}[SIZE]
CONTEXT = 128
TRAINING_SETS = {
    "tiny": {"real": ("mdqa", "realistic"), "symbolic": ("mdqa", "symbolic")},
    "full": {
        "real": ("mdqa", "realistic"),
        "realistic-filler": ("mdqa", "realistic-filler"),
        "fictional": ("mdqa", "fictional"),
        "fictional-filler": ("mdqa", "fictional-filler"),
        "symbolic": ("mdqa", "symbolic"),
        "kv symbolic": ("kv", "symbolic"),
    },
}[SIZE]
K = 4  # retrieval heads per model compared (top-k, as in the paper)

import plotly.io as pio

pio.renderers.default = "plotly_mimetype+notebook"

import rhlens
from rhlens import plot

# %% [markdown]
# ## Fine-tune one copy of the base per training set
#
# `rhlens.train` trains on the answer tokens only (the prompt is context), with AdamW, warm-up
# and cosine decay. Every copy sees the same number of examples in the same order.

# %%
test = rhlens.generate("mdqa", "realistic", n=N_TEST, context_tokens=CONTEXT, seed=10_000)


def fine_tune(task: str, variant: str):
    model = rhlens.load_base()
    data = rhlens.generate(task, variant, n=STEPS * BATCH, context_tokens=CONTEXT, seed=0)
    config = rhlens.TrainConfig(steps=STEPS, batch_size=BATCH, lr=1e-3, warmup_steps=max(1, STEPS // 10),
                                seed=0, progress=False)
    result = rhlens.train(model, data, config)
    return model, result.loss_curve[-1]


models, accuracy, scores = {}, {}, {}
for name, (task, variant) in TRAINING_SETS.items():
    model, loss = fine_tune(task, variant)
    models[name] = model
    accuracy[name] = rhlens.evaluate(model, test, progress=False).score
    scores[name] = rhlens.retrieval_scores(model, test, method="decode", progress=False)
    print(f"{name:17s} final loss {loss:6.3f}  real-task exact match {accuracy[name]:.2f}  "
          f"counted {scores[name].n_counted}/{N_TEST}")

# %% [markdown]
# ## Retrieval heads of every model, on one colour scale

# %%
plot.compare_heatmaps(dict(scores), title="retrieval scores on the real task, by training set", zmin=0, zmax=1)

# %% [markdown]
# ## Recall of the real model's heads against accuracy
#
# The real model's top-k heads are the reference; a model's recall is the share of them among its
# own top-k heads (`HeadSet.recall`).

# %%
reference = scores["real"].top(K)
recall = {name: s.top(K).recall(reference) for name, s in scores.items()}
print("reference heads:", reference)
for name in scores:
    print(f"{name:17s} top-{K} {scores[name].top(K)}  recall {recall[name]:.2f}  accuracy {accuracy[name]:.2f}")

# %%
fig = plot.recall_vs_performance(recall, accuracy, title=f"recall of the real model's top-{K} heads vs real-task accuracy")
print(f"Pearson r = {fig.layout.meta['pearson_r']:.2f}, Spearman rho = {fig.layout.meta['spearman_rho']:.2f}")
fig

# %% [markdown]
# With only a handful of models and a tiny base, the correlation is a sketch, not evidence; the
# paper's figure pools five synthetic variants per task over three tasks and two models. The next
# tutorial tests the heads causally: knock them out, block their attention, and patch the real
# model's heads into a synthetic model.
