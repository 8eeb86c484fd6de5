"""Tools built on rhlens's core: whole jobs a researcher runs from the command line.

- :mod:`rhlens.tools.study`: the paper's pipeline end to end (``rhlens study``): fine-tune on the
  real task and on each synthetic variant, score heads, knock out, patch, write a report.
- :mod:`rhlens.tools.quickstart`: the smallest end-to-end run on the embedded base
  (``rhlens quickstart``).
- :mod:`rhlens.tools.pretrain`: the embedded base model's recipe and stage runner
  (``rhlens pretrain-base``).

They use only the public core below them (tasks, models, the engine, scoring, interventions,
training, plot); nothing in the core imports them.
"""
