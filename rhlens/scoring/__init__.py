"""Analyzers that score attention heads.

- :mod:`rhlens.scoring.detector`: the detector seam. A :class:`Detector` says which rows to
  observe, what to reduce per head and how to finish; :func:`score_heads` runs any detector
  batched and chunked on the run engine. Adding a detector is one new module.
- :func:`retrieval_scores` (:mod:`rhlens.scoring.retrieval`): Wu et al.'s retrieval score of
  every head, decoded or teacher-forced (the detectors :class:`WuDecode` and :class:`WuForced`
  of :mod:`rhlens.scoring.wu`); ``rule="wu-literal"`` follows Wu's code to the letter (stop token,
  needle window, ``rouge_score`` gate: :mod:`rhlens.scoring.wu_literal`).
- :class:`HeadScores` (:mod:`rhlens.scoring.results`): the result of every detector, with head
  sets, GQA grouping, Wu et al.'s JSON format, a DataFrame view and safetensors files; Wu et
  al.'s per-trial extras (responses, hits, gate) are its :class:`RetrievalTrials`.
- :func:`compare_detectors` (:mod:`rhlens.scoring.compare`): several head detectors
  (:mod:`rhlens.scoring.detectors`: Wu's two, attention mass, QRHead's query focus, attribution)
  on the same examples, with their pairwise agreement (:mod:`rhlens.scoring.agreement`).

Scoring runs on :mod:`rhlens.engine` (the one decoding loop of rhlens). Slow reference
implementations that share no code with them live in the tests (``tests/references``).
"""

from rhlens.scoring.compare import DetectorComparison, compare_detectors
from rhlens.scoring.detector import Detector, score_heads
from rhlens.scoring.results import HeadScores, RetrievalTrials
from rhlens.scoring.retrieval import retrieval_scores
from rhlens.scoring.wu import WuDecode, WuForced

__all__ = [
    "Detector", "DetectorComparison", "HeadScores", "RetrievalTrials", "WuDecode", "WuForced", "compare_detectors",
    "retrieval_scores", "score_heads",
]
