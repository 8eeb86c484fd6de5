"""Slow, independent reference implementations of Wu et al.'s retrieval score, for the tests and
the benchmark only (not part of the installed package).

None of them imports rhlens's encoding, stop rule, span mapping, gate or score assembly: each
re-does those from the tokenizer (see :mod:`tests.references.wu_rule`), so a mistake there shows
up as a difference. :mod:`tests.references.hf_wu` runs a Hugging Face ``LlamaForCausalLM`` with
eager attention and shares no rhlens code at all; :mod:`tests.references.tl_loops` runs the
rhlens model (a TransformerLens model, through :mod:`rhlens.adapter` only to call it and hook
its attention pattern) in a naive loop and in a port of Wu et al.'s loop.
"""
