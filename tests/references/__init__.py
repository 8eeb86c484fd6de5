"""Slow, independent reference implementations of Wu et al.'s retrieval score, for the tests and
the benchmark only (not part of the installed package).

None of them imports rhlens's encoding, stop rule, span mapping, gate or score assembly: each
re-does those from the tokenizer (see :mod:`tests.references.wu_rule`), so a mistake there shows
up as a difference. :mod:`tests.references.hf_wu` runs a Hugging Face ``LlamaForCausalLM`` with
eager attention; :mod:`tests.references.wu_literal` reads Wu et al.'s file literally on the same
(their window search, line-feed stop and ``rouge_score`` gate: ``rule="wu-literal"``);
:mod:`tests.references.tl_loops` calls a TransformerLens model through TransformerLens's own API
(``blocks.L.attn.hook_pattern``, its key/value cache) in a naive loop and in a port of Wu et
al.'s loop. ``tests/unit/scoring/test_references_independent.py`` checks that none imports rhlens.
"""
