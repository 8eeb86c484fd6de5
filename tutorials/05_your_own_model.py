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
# # 05 · Your own model: a local checkpoint, Wu et al.'s detection grid, their score files
#
# rhlens loads a local Hugging Face checkpoint folder (Llama, Mistral, Qwen2 or GPT-2 shaped)
# offline, as a TransformerLens `HookedTransformer` or as a `TransformerBridge`; every analyzer
# takes either. This tutorial
#
# 1. writes a small Llama checkpoint folder (unless you point `RHLENS_CHECKPOINT` at yours),
# 2. loads it both ways,
# 3. runs Wu et al.'s needle-in-a-haystack detection over a context-length x depth grid,
# 4. reads and writes Wu et al.'s score files (`head_score/*.json`),
# 5. shows the same steps for Llama-3-8B-Instruct at long context on a GPU: that section runs
#    only when `RHLENS_LLAMA3_PATH` names a local copy of its weights, and is otherwise dry-run
#    on the small checkpoint.
#
# Nothing is downloaded: every path is a local folder.

# %%
import os
import tempfile
from pathlib import Path

SIZE = os.environ.get("RHLENS_TUTORIAL_SIZE", "full")
LENGTHS = {"tiny": [64, 128], "full": [64, 128, 192, 256]}[SIZE]
DEPTHS = {"tiny": [0.0, 1.0], "full": [0.0, 0.25, 0.5, 0.75, 1.0]}[SIZE]
NEEDLES_PER_CELL = {"tiny": 1, "full": 4}[SIZE]
CHECKPOINT = os.environ.get("RHLENS_CHECKPOINT")        # your model folder (config.json, weights, tokenizer.json)
WU_SCORES = os.environ.get("RHLENS_WU_SCORES")          # one of Wu et al.'s head_score/*.json files
LLAMA3 = os.environ.get("RHLENS_LLAMA3_PATH")           # a local Meta-Llama-3-8B-Instruct folder (GPU section)

import plotly.io as pio

pio.renderers.default = "plotly_mimetype+notebook"

import torch

import rhlens
from rhlens import plot
from rhlens.scoring import HeadScores

# %% [markdown]
# ## 1 · A checkpoint folder
#
# With no `RHLENS_CHECKPOINT`, we write one: a Hugging Face causal LM holding the embedded
# base model's weights (so that its heads have something to find; a randomly initialised model
# would score 0 everywhere), saved with `save_pretrained` next to its fast tokenizer. That is the
# same layout as any model from the Hugging Face Hub. The base has 12 heads of 32 on a residual
# of 128, a shape only `MistralForCausalLM` holds (Llama's config refuses it), and Mistral has no
# biases, so the small biases the base learned are dropped first; the check below shows how
# little its answers change.

# %%
if CHECKPOINT is None:
    from rhlens.models.bridge import hf_llama_from_hooked

    base = rhlens.load_base()
    check = rhlens.generate("mdqa", "realistic", n=16, context_tokens=128, seed=1)
    before = rhlens.evaluate(base, check, progress=False).score
    with torch.no_grad():
        for name, parameter in base.named_parameters():
            # b_Q ... b_U on a HookedTransformer (TransformerLens 3); q_proj.bias ... on a bridge (4)
            if name.rsplit(".", 1)[-1].startswith("b_") or name.endswith(".bias"):
                parameter.zero_()
    print(f"exact match on 16 MDQA examples: {before:.2f} with the biases, "
          f"{rhlens.evaluate(base, check, progress=False).score:.2f} without")
    CHECKPOINT = Path(tempfile.mkdtemp(prefix="rhlens-tutorial-")) / "tiny-llama"
    hf_model = hf_llama_from_hooked(base)          # a Hugging Face model with the base's weights
    hf_model.save_pretrained(CHECKPOINT)
    base.tokenizer.save_pretrained(CHECKPOINT)
    print(type(hf_model).__name__, f"{sum(p.numel() for p in hf_model.parameters()):,} parameters")
print(CHECKPOINT, sorted(p.name for p in Path(CHECKPOINT).iterdir()))

# %% [markdown]
# ## 2 · Load it as a HookedTransformer and as a TransformerBridge
#
# `load_hf_checkpoint` maps `config.json` to a `HookedTransformerConfig` without touching the
# network, reads the weights (safetensors, sharded or not; `.bin` only as plain tensors) and the
# fast tokenizer. `load_bridge` wraps the Hugging Face model itself in TransformerLens's
# `TransformerBridge`. Neither ever runs code from the folder. (TransformerLens 4 has no
# `HookedTransformer`: there `load_hf_checkpoint` boots a `TransformerBridge` too.)

# %%
model = rhlens.load_hf_checkpoint(CHECKPOINT)
bridge = rhlens.load_bridge(CHECKPOINT)
print(type(model).__name__, model.cfg.n_layers, "layers x", model.cfg.n_heads, "heads")
print(type(bridge).__name__)

# %% [markdown]
# ## 3 · Wu et al.'s detection grid
#
# Wu et al. find retrieval heads with needle-in-a-haystack trials over a grid of context lengths
# and needle depths. `rhlens.niah_grid` writes the grid's examples (length-major);
# `retrieval_scores` scores every head over all of them, and the per-example results give a
# score for each cell.

# %%
grid = rhlens.niah_grid(LENGTHS, DEPTHS, needles=NEEDLES_PER_CELL, variant="realistic", tokenizer=model.tokenizer)
print(len(grid), "examples, e.g.:", repr(grid[0].prompt[-150:]), "->", grid[0].answer)

scores = rhlens.retrieval_scores(model, grid, method="decode", progress=False)
print(scores)
plot.head_heatmap(scores, title="retrieval scores over the NIAH grid")

# %%
accuracy = rhlens.evaluate(model, grid, progress=False).per_example
n_cells = len(LENGTHS) * len(DEPTHS)
per_cell = accuracy.reshape(n_cells, NEEDLES_PER_CELL).mean(dim=1)       # grid order: length-major
plot.niah_grid_heatmap(per_cell, LENGTHS, DEPTHS, title="needle retrieved (exact match) by length and depth")

# %% [markdown]
# The best head's own score in each cell: where in the grid it does the retrieving.

# %%
best = scores.top(1).ordered()[0]
best_per_cell = scores.per_example[:, best.layer, best.head].reshape(n_cells, NEEDLES_PER_CELL).mean(dim=1)
plot.niah_grid_heatmap(best_per_cell, LENGTHS, DEPTHS, title=f"{best}'s retrieval score by length and depth")

# %% [markdown]
# The bridge gives the same scores (same weights, same hooks seen through TransformerLens's
# bridge): the largest difference is printed.

# %%
bridge_scores = rhlens.retrieval_scores(bridge, grid, method="decode", progress=False)
print("largest |hooked - bridge| score difference:", float((scores.scores - bridge_scores.scores).abs().max()))

# %% [markdown]
# ## 4 · Wu et al.'s score files
#
# Wu et al. release their heads' scores as JSON: `{"<layer>-<head>": [score per trial, ...]}`.
# `HeadScores.to_wu_json()` writes that format and `HeadScores.from_wu_json(path)` reads it, so
# published scores of a large model can be compared with your own. Set `RHLENS_WU_SCORES` to one
# of their files (e.g. the Llama-2-7B-80K scores) to plot it here.

# %%
import json

wu_file = Path(tempfile.mkdtemp(prefix="rhlens-wu-")) / "tiny-llama.json"
wu_file.write_text(json.dumps(scores.to_wu_json()))
again = HeadScores.from_wu_json(wu_file)
print("round trip keeps the scores:", bool(torch.allclose(again.scores, scores.scores)))

if WU_SCORES:
    published = HeadScores.from_wu_json(WU_SCORES)
    print(published.n_layers, "x", published.n_heads, "heads; top 10:", published.top(10))
    display_fig = plot.head_heatmap(published, title=f"Wu et al.'s scores: {Path(WU_SCORES).name}")
else:
    display_fig = plot.head_heatmap(again, title="scores read back from Wu et al.'s format")
display_fig

# %% [markdown]
# ## 5 · Llama-3-8B-Instruct at long context (GPU)
#
# The same steps for a real model. Llama-3-8B-Instruct has 32 layers x 32 query heads sharing 8
# key/value heads (grouped-query attention): scores are per *query* head, and
# `HeadScores.by_kv_group()` pools them per key/value group. In bfloat16 it needs about 16 GB of
# GPU memory plus the KV cache; `chunk_size` bounds the prefill's memory. Set
# `RHLENS_LLAMA3_PATH` to a local copy of the weights to run it; without it, the function below is
# dry-run on the small checkpoint so that it is tested.

# %%
def long_context_detection(path, *, lengths, depths, needles, device, dtype):
    big = rhlens.load_hf_checkpoint(path, dtype=dtype, device=device)
    trials = rhlens.niah_grid(lengths, depths, needles=needles, variant="realistic", tokenizer=big.tokenizer)
    found = rhlens.retrieval_scores(big, trials, method="decode", batch_size=1, chunk_size=2048, progress=False)
    kv = found.by_kv_group("max") if found.n_kv_heads else None
    return found, kv


if LLAMA3:
    llama_scores, llama_kv = long_context_detection(
        LLAMA3, lengths=[1000, 2000, 4000, 8000], depths=[0.0, 0.25, 0.5, 0.75, 1.0], needles=2,
        device="cuda", dtype=torch.bfloat16)
    print(llama_scores)
    print("retrieval heads (> 0.1):", len(llama_scores.above(0.1)), "of", llama_scores.n_layers * llama_scores.n_heads)
    llama_fig = plot.head_heatmap(llama_scores, title="Llama-3-8B-Instruct: retrieval scores (NIAH, up to 8K tokens)")
else:
    dry_scores, _ = long_context_detection(CHECKPOINT, lengths=LENGTHS[:1], depths=DEPTHS[:1], needles=1,
                                           device="cpu", dtype=torch.float32)
    print("dry run on the small checkpoint:", dry_scores)
    llama_fig = None
llama_fig
