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
# # 06 · Head detectors side by side: which score finds the heads that matter
#
# "Retrieval head" has several working definitions. This tutorial runs five detectors on the same
# examples and asks two questions: do they name the same heads, and whose heads does the answer
# actually need?
#
# - **decode** and **forced**: Wu et al.'s retrieval score (the head's top attended token is the one
#   being copied), while the model answers, or with the gold answer teacher-forced;
# - **attention_mass**: the attention from the last prompt position summed over the needle;
# - **query_focus**: QRHead's calibrated attention from the question to the gold document (the
#   question's attention minus the attention of a null question, "N/A");
# - **attribution**: the first-order drop of the answer's log-prob when the head is zeroed, the
#   causal yardstick.
#
# A few minutes on a laptop CPU at full size.

# %%
import os
from pathlib import Path

SIZE = os.environ.get("RHLENS_TUTORIAL_SIZE", "full")
STEPS = {"tiny": 2, "full": 150}[SIZE]
N_TEST = {"tiny": 6, "full": 40}[SIZE]
N_BOOT = {"tiny": 10, "full": 200}[SIZE]
N_RANDOM = {"tiny": 1, "full": 3}[SIZE]
KS = {"tiny": [1, 3], "full": [1, 2, 3, 5, 8]}[SIZE]
CONTEXT = 128

import plotly.io as pio

pio.renderers.default = "plotly_mimetype+notebook"

import rhlens
from rhlens import plot

# %% [markdown]
# ## The embedded base, fine-tuned briefly on multi-document QA

# %%
model = rhlens.load_base()
train = rhlens.generate("mdqa", "realistic", n=STEPS * 8, context_tokens=CONTEXT, seed=0)
rhlens.train(model, train, rhlens.TrainConfig(steps=STEPS, batch_size=8, lr=1e-3, warmup_steps=max(1, STEPS // 10),
                                              seed=0, progress=False))
test = rhlens.generate("mdqa", "realistic", n=N_TEST, context_tokens=CONTEXT, seed=10_000)
print(f"exact match on {N_TEST} test examples: {rhlens.evaluate(model, test, progress=False).score:.2f}")

# %% [markdown]
# ## Five detectors, one call
#
# `rhlens.compare_detectors` runs them all on the same examples. Every result is a `HeadScores`
# with one score per head and example; the comparison adds, for each pair, Spearman's rho over all
# heads and the overlap of their top 5, 10 and 20% of heads, with bootstrap intervals over the
# examples.

# %%
cmp = rhlens.compare_detectors(model, test, n_boot=N_BOOT, progress=False)
for name, hs in cmp.scores.items():
    print(f"{name:15s} top 3: {' '.join(str(h) for h in hs.top(3, include_zero=True).ordered())}")
table = cmp.to_dataframe()
table.round(2)

# %% [markdown]
# ## Whose heads does the answer need?
#
# `rhlens.knockout_curves` zeroes each detector's top-k heads for every k on a grid and measures the
# gold answer's log-prob; the controls are random heads drawn outside every detector's top-k. The
# detector whose curve falls fastest ranks the causal heads best.

# %%
curves = rhlens.knockout_curves(model, test, cmp.scores, ks=KS, n_random=N_RANDOM, progress=False)
fig = plot.knockout_curves_figure(curves, title="mdqa: answer log-prob with each detector's top-k heads out")
fig

# %%
k3 = KS.index(3)
drops = {name: float(curves.drop(name)[k3]) for name in curves.curves}
random3 = float(curves.random_drop()[k3])
for name, d in sorted(drops.items(), key=lambda kv: -kv[1]):
    print(f"top-3 of {name:15s} out: log-prob drops {d:+.2f} (random 3 heads: {random3:+.2f})")
best = max(drops, key=drops.get)
print(f"\nReading: {best}'s top heads matter most here; "
      f"{sum(d > random3 for d in drops.values())} of {len(drops)} detectors' top-3 hurt more than random-3.")

# %% [markdown]
# How to read it: the detectors that look at *what the answer copies* (Wu's two scores, attention
# mass on the needle) usually pick the same few heads, and knocking those out costs far more than
# random heads. QRHead's query focus looks at where the *question* attends, which is a
# different job (finding the document); its heads overlap less with the copying heads and their
# knockout hurts less when the answer is a copied span. Attribution is the first-order estimate of
# the knockout itself, so it agrees with the curves by construction where the model is close to
# linear in a head's output; where it disagrees with the measured curve, the estimate is off.

# %% [markdown]
# ## The same on a real pretrained model: stories260K
#
# A 260K-parameter Llama trained on TinyStories (llama2.c), when it is present beside the checkout
# (`RHLENS_STORIES260K` names its folder). Its prompts here are tiny stories as documents and a
# question about one of them.

# %%
STORIES = Path(os.environ.get("RHLENS_STORIES260K", Path.cwd().parent / "shared" / "realdata" / "models" / "stories260K"))
stories_cmp = None
if STORIES.is_dir():
    from rhlens.tasks.templates import document_prompt

    facts = [("Lily had a big red ball.", "What did Lily have?", "a big red ball"),
             ("Tom had a small dog named Max.", "What was the dog's name?", "Max"),
             ("Tim loved to eat fish.", "What did Tim love to eat?", "fish")]
    stories = []
    for g, (_, question, answer) in enumerate(facts):
        docs = [f"Document [{i + 1}] {text}" for i, (text, _, _) in enumerate(facts)]
        prompt = document_prompt(docs, question, task="mdqa", instruction=False)
        start = prompt.index(docs[g])
        stories.append(rhlens.Example(prompt, answer, ((start, start + len(docs[g])),), "mdqa", "real"))
    small = rhlens.load_hf_checkpoint(STORIES)
    stories_cmp = rhlens.compare_detectors(small, stories, detectors=["forced", "attention_mass", "query_focus", "attribution"],
                                           rouge_gate=None, n_boot=N_BOOT, progress=False)
    print(stories_cmp.to_dataframe()[["a", "b", "spearman"]].round(2))
else:
    print(f"stories260K is not at {STORIES}; set RHLENS_STORIES260K to its folder to run this part")
