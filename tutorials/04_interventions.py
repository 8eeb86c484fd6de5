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
# # 04 · Interventions: knockout, attention-edge blocking, cross-model patching
#
# Retrieval scores are correlational: a head that looks at the answer might not be what produces
# it. Three interventions test the heads causally:
#
# 1. **knockout**: remove chosen heads while the model answers (three ways to remove a head,
#    two scopes);
# 2. **attention-edge blocking**: keep every head but cut the edges from the answer positions to
#    the needle;
# 3. **cross-model patching**: write a real-data model's head outputs into a synthetic-data
#    model, to see how much of the gap those heads carry.
#
# A few minutes on a laptop CPU at full size.

# %%
import os
import random

SIZE = os.environ.get("RHLENS_TUTORIAL_SIZE", "full")
STEPS = {"tiny": 2, "full": 120}[SIZE]
BATCH = {"tiny": 4, "full": 16}[SIZE]
N_TEST = {"tiny": 6, "full": 40}[SIZE]
N_RANDOM = {"tiny": 1, "full": 3}[SIZE]
CONTEXT = 128

import plotly.io as pio

pio.renderers.default = "plotly_mimetype+notebook"

import rhlens
from rhlens import plot

# %% [markdown]
# Two fine-tuned copies of the base: one on the "real" task (the `realistic` MDQA variant stands in
# for real data here, as in tutorial 03), one on its symbolic variant.

# %%
test = rhlens.generate("mdqa", "realistic", n=N_TEST, context_tokens=CONTEXT, seed=10_000)


def fine_tune(variant: str):
    model = rhlens.load_base()
    data = rhlens.generate("mdqa", variant, n=STEPS * BATCH, context_tokens=CONTEXT, seed=0)
    rhlens.train(model, data, rhlens.TrainConfig(steps=STEPS, batch_size=BATCH, lr=1e-3,
                                                 warmup_steps=max(1, STEPS // 10), seed=0, progress=False))
    return model


real, synthetic = fine_tune("realistic"), fine_tune("symbolic")
real_base = rhlens.evaluate(real, test, progress=False)
synthetic_base = rhlens.evaluate(synthetic, test, progress=False)
real_scores = rhlens.retrieval_scores(real, test, progress=False)
synthetic_scores = rhlens.retrieval_scores(synthetic, test, progress=False)
heads = real_scores.above(0.1) or real_scores.top(2)
print(f"real-data model:      exact match {real_base.score:.2f}; retrieval heads {heads}")
print(f"symbolic-data model:  exact match {synthetic_base.score:.2f}; top heads {synthetic_scores.top(len(heads))}")

# %% [markdown]
# ## 1 · Knockout: modes and scopes
#
# Modes (what replaces the head):
#
# - `"zero"`: the head's output is set to 0;
# - `"mean"`: the head's output is replaced by its mean over reference prompts (keeps the
#   output's typical size; removes what depends on this input);
# - `"uniform"`: Wu et al.'s masking: the head attends uniformly over its context (it no
#   longer *selects* a position).
#
# Scopes (where): `"decode"` (Wu et al.) knocks the head out only while the answer is produced,
# the prompt's forward pass intact; `"all"` knocks it out everywhere, so later layers also see
# a changed prompt. The control knocks out as many random heads drawn from the non-retrieval heads.

# %%
n_heads = real.cfg.n_layers * real.cfg.n_heads
controls = [rhlens.random_heads(real, min(len(heads), n_heads - len(heads)), heads, seed=s) for s in range(N_RANDOM)]
rows = {}
for mode in ("zero", "mean", "uniform"):
    for scope in ("decode", "all"):
        kw = dict(mode=mode, scope=scope, baseline=real_base, progress=False,
                  reference=test if mode == "mean" else None)
        top = rhlens.knockout_effect(real, test, heads, **kw)
        rand = [rhlens.knockout_effect(real, test, c, **kw) for c in controls]
        rows[f"{mode}, {scope}"] = {"retrieval": top, "random": rand}
        print(f"{mode:8s} {scope:6s}: retrieval heads {top.knocked.score:.2f}, "
              f"random heads {sum(r.knocked.score for r in rand) / len(rand):.2f} (intact {real_base.score:.2f})")

# %%
plot.knockout_bars(rows, title=f"knocking out {len(heads)} retrieval heads vs {len(heads)} random heads, by mode and scope")

# %% [markdown]
# ## 2 · Attention-edge blocking
#
# Instead of removing heads, cut specific attention edges: from the positions that predict the
# answer to the needle's tokens, in every head of every layer. If the answer is read straight
# from the needle by attention, the gold answer's log-probability should collapse; cutting the
# edges to as many other prompt tokens is the control. `block_attention` takes absolute columns;
# here each example runs alone (no padding) through a teacher-forced forward
# (`metric="logprob"`).

# %%
from rhlens.encoding import encode_example

rng = random.Random(0)
intact, blocked, control = [], [], []
for i, ex in enumerate(test):
    enc = encode_example(real.tokenizer, ex, index=i)
    needle = [p for s, e in enc.needle_spans for p in range(s, e)]
    others = [p for p in range(1, enc.prompt_len - 1) if p not in set(needle)]
    decoy = sorted(rng.sample(others, min(len(needle), len(others))))
    answer_rows = list(range(enc.prompt_len - 1, len(enc.tokens) - 1))  # rows that predict answer tokens
    intact.append(rhlens.evaluate(real, [ex], metric="logprob", progress=False).score)
    with rhlens.block_attention(real, from_positions=answer_rows, to_positions=needle):
        blocked.append(rhlens.evaluate(real, [ex], metric="logprob", progress=False).score)
    with rhlens.block_attention(real, from_positions=answer_rows, to_positions=decoy):
        control.append(rhlens.evaluate(real, [ex], metric="logprob", progress=False).score)


def mean(xs):
    return sum(xs) / len(xs)


print(f"gold-answer log-prob: intact {mean(intact):.2f}, answer->needle edges blocked {mean(blocked):.2f}, "
      f"answer->other tokens blocked {mean(control):.2f}")

# %% [markdown]
# ## 3 · Cross-model patching
#
# Run the real-data model (source) and the symbolic-data model (target) in lockstep on the same
# tokens and overwrite chosen heads' outputs in the target with the source's. If the target lacks
# what those heads do in the source, patching them in recovers part of its score.
#
# Zhao et al.'s table patches the *intersection* of the two models' top-k heads, the source's
# heads *outside* the target's (the complement), and random sets of the same sizes.

# %%
k = len(heads)
table = rhlens.patching_table(real, synthetic, test, real_scores, synthetic_scores, k=k, n_random=N_RANDOM,
                              progress=False)
for row in table.rows:
    print(f"{row.name:28s} {len(row.heads):2d} heads  score {row.score:.2f}  delta {row.delta:+.2f}")
plot.patching_table_figure(table, title=f"patching the real-data model's heads into the symbolic-data model (k = {k})")

# %% [markdown]
# One head at a time: `patch_sweep` patches every head alone and measures the change in the gold
# answer's log-probability (teacher-forced, one batched pass per head). Positive cells are heads
# whose real-data version helps the synthetic model.

# %%
sweep = rhlens.patch_sweep(real, synthetic, test[: max(4, N_TEST // 4)], progress=False)
print("heads that help most when patched alone:", sweep.top(3))
plot.head_heatmap(sweep, title="gain in gold-answer log-prob from patching each head alone")
