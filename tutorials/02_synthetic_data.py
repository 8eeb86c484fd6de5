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
# # 02 · Synthetic data: every task and variant
#
# Zhao et al. build synthetic long-context training sets along two axes:
#
# - **needle realism** ("concept expression"): are the facts to retrieve about real-looking
#   entities and relations (`realistic`), invented ones (`fictional`), or bare symbols (`symbolic`)?
# - **haystack diversity** ("context diversity"): is the surrounding text varied documents
#   (`varied`), or the same few filler sentences repeated (`filler`)?
#
# rhlens generates every task in every variant from one entry point, `rhlens.generate`. No model
# and no torch are needed here; this runs in seconds.

# %%
import os
import re
from collections import Counter

SIZE = os.environ.get("RHLENS_TUTORIAL_SIZE", "full")
N_PER_CELL = {"tiny": 3, "full": 30}[SIZE]
CONTEXT = {"tiny": 128, "full": 256}[SIZE]

import plotly.graph_objects as go
import plotly.io as pio

pio.renderers.default = "plotly_mimetype+notebook"

import rhlens
from rhlens.tasks import variant_axes

print("tasks   :", rhlens.TASKS)
print("variants:", {v: variant_axes(v) for v in rhlens.VARIANTS})

# %% [markdown]
# ## One example of each task
#
# - `mdqa`: multi-document QA (one document answers the question);
# - `musique`: multi-hop QA (two facts in different documents chain to the answer);
# - `summhay`: SummHay-style citation (cite every document that states an insight);
# - `kv`: key-value retrieval from a JSON object;
# - `niah`: a needle sentence in a haystack (Wu et al.'s detection task).
#
# The needle spans (`Example.needles`) mark the evidence; knockout, blocking and patching
# positions refer to them.

# %%
for task in rhlens.TASKS:
    ex = rhlens.generate(task, "realistic", n=1, context_tokens=128, seed=1)[0]
    print(f"=== {task}: answer {ex.answer!r}")
    print("    evidence:", [ex.prompt[s:e] for s, e in ex.needles])
    print("    prompt ends:", repr(ex.prompt[-160:]))

# %% [markdown]
# ## One task, five variants
#
# The same multi-hop question in each variant: watch the entities (realism) and the filler
# (diversity) change while the task's form stays fixed.

# %%
for variant in rhlens.VARIANTS:
    ex = rhlens.generate("musique", variant, n=1, context_tokens=128, seed=2)[0]
    print(f"--- {variant} {variant_axes(variant)}: answer {ex.answer!r}")
    print("   ", ex.prompt[:230].replace("\n", " | "), "...")

# %% [markdown]
# ## Measuring what the knobs change
#
# Two simple statistics per task and variant, over a few examples at the same length:
#
# - **distinct sentences**: the share of the prompt's sentences that occur only once. Filler
#   haystacks repeat a handful of sentences, so this drops.
# - **distinct words**: distinct words / words. Symbolic variants draw from a small syllable
#   alphabet; filler repeats the same words.
#
# (`kv` prompts are JSON lines, one distinct pair per line, so only its word statistic moves.)

# %%
def sentence_stats(prompt: str) -> tuple[float, float]:
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n", prompt) if s.strip()]
    counts = Counter(sentences)
    distinct_sentences = sum(1 for s in sentences if counts[s] == 1) / len(sentences)
    words = re.findall(r"\w[\w-]*", prompt.lower())
    return distinct_sentences, len(set(words)) / len(words)


rows = {}
for task in rhlens.TASKS:
    for variant in rhlens.VARIANTS:
        exs = rhlens.generate(task, variant, n=N_PER_CELL, context_tokens=CONTEXT, seed=3)
        stats = [sentence_stats(e.prompt) for e in exs]
        rows[task, variant] = tuple(sum(s[i] for s in stats) / len(stats) for i in range(2))

print(f"{'task':8s} {'variant':17s} distinct sentences  distinct words")
for (task, variant), (ds, dw) in rows.items():
    print(f"{task:8s} {variant:17s} {ds:18.2f}  {dw:14.2f}")

# %%
fig = go.Figure()
for i, name in enumerate(["distinct sentences", "distinct words"]):
    fig.add_trace(go.Heatmap(
        z=[[rows[t, v][i] for v in rhlens.VARIANTS] for t in rhlens.TASKS],
        x=list(rhlens.VARIANTS), y=list(rhlens.TASKS), zmin=0, zmax=1, colorscale="Viridis",
        visible=(i == 0), name=name, hovertemplate="%{y} / %{x}<br>" + name + " = %{z:.2f}<extra></extra>",
        colorbar=dict(title=dict(text="share")),
    ))
fig.update_layout(
    title=f"how varied is the prompt? ({CONTEXT} tokens, {N_PER_CELL} examples per cell)",
    updatemenus=[dict(type="buttons", direction="right", x=0, y=1.15, buttons=[
        dict(label=name, method="update", args=[{"visible": [j == i for j in range(2)]}])
        for i, name in enumerate(["distinct sentences", "distinct words"])])],
    height=420,
)
fig

# %% [markdown]
# ## Other knobs
#
# Each task has its own knobs, recorded in `Example.meta`: `n_docs` (documents in MDQA), `hops`
# (MuSiQue), `n_citing` (SummHay documents that state the insight), `key_chunks` /
# `value_chunks` (the length of kv keys and values). `position` puts the needle at a document
# index or a depth fraction, and `rhlens.niah_grid(lengths, depths)` builds Wu et al.'s whole
# length x depth grid (tutorial 05, `05_your_own_model.py`, scores one).

# %%
ex = rhlens.generate("mdqa", "fictional", n=1, context_tokens=256, seed=4, position=0.0, n_docs=6)[0]
print({k: ex.meta[k] for k in sorted(ex.meta) if k in ("n_docs", "position", "context_tokens", "variant", "seed")})
grid = rhlens.niah_grid([64, 128], [0.0, 0.5, 1.0], needles=1, variant="realistic-filler")
print([(e.meta["context_tokens"], e.meta["position"]) for e in grid])
