"""Analyzers that score attention heads.

- :func:`retrieval_scores` (:mod:`rhlens.scoring.retrieval`): Wu et al.'s retrieval score of
  every head, decoded or teacher-forced, batched and in bounded memory.
- :class:`HeadScores` (:mod:`rhlens.scoring.results`): the result, with head sets, GQA grouping,
  Wu et al.'s JSON format, a DataFrame view and safetensors files.

- :func:`compare_detectors` (:mod:`rhlens.scoring.compare`): several head detectors
  (:mod:`rhlens.scoring.detectors`: Wu's two, attention mass, QRHead's query focus, attribution)
  on the same examples, with their pairwise agreement (:mod:`rhlens.scoring.agreement`).

Scoring runs on :mod:`rhlens.engine` (the one decoding loop of rhlens). Slow reference
implementations that share no code with them live in the tests (``tests/references``).
"""

from rhlens.scoring.compare import DetectorComparison, compare_detectors
from rhlens.scoring.results import HeadScores
from rhlens.scoring.retrieval import retrieval_scores

__all__ = ["DetectorComparison", "HeadScores", "compare_detectors", "retrieval_scores"]
