"""Analyzers that score attention heads.

- :func:`retrieval_scores` (:mod:`rhlens.scoring.retrieval`): Wu et al.'s retrieval score of
  every head, decoded or teacher-forced, batched and in bounded memory.
- :class:`HeadScores` (:mod:`rhlens.scoring.results`): the result, with head sets, GQA grouping,
  Wu et al.'s JSON format, a DataFrame view and safetensors files.

Scoring runs on :mod:`rhlens.engine` (the one decoding loop of rhlens). Slow reference
implementations that share no code with them live in the tests (``tests/references``).
"""

from rhlens.scoring.results import HeadScores
from rhlens.scoring.retrieval import retrieval_scores

__all__ = ["HeadScores", "retrieval_scores"]
