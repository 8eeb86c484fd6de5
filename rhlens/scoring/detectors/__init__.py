"""Head detectors: which heads look like retrieval heads, by several definitions.

Each returns :class:`rhlens.HeadScores` with ``per_example`` ``[n_examples, n_layers, n_heads]``
(query heads), so any two can be compared (:func:`rhlens.compare_detectors`):

- ``decode``, ``forced``: Wu et al.'s retrieval score (:func:`rhlens.retrieval_scores`);
- ``attention_mass``: :class:`~rhlens.scoring.detectors.attention_mass.AttentionMass` behind the
  scoring seam (:mod:`rhlens.scoring.detector`), :func:`~rhlens.scoring.detectors.attention_mass.attention_mass`;
- ``query_focus``: QRHead's calibrated query-to-document attention
  (:func:`~rhlens.scoring.detectors.query_focus.query_focus`);
- ``attribution``: the first-order effect of zeroing the head on the answer's log-prob
  (:func:`~rhlens.scoring.detectors.attribution.knockout_attribution`), the causal yardstick.
"""

from rhlens.scoring.detectors.attention_mass import attention_mass
from rhlens.scoring.detectors.query_focus import query_focus

__all__ = ["attention_mass", "query_focus"]
