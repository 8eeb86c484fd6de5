"""`HeadScores`: per-head scores of any detector, with the examples behind them.

The plot-ready tensor is :attr:`HeadScores.scores` ``[n_layers, n_heads]`` (query heads), the
mean of the per-example scores over the examples that count. What only Wu et al.'s retrieval
score has (the decoded responses, the hit counts, the ROUGE gate) is in
:class:`RetrievalTrials` (:attr:`HeadScores.trials`), so that a score can be traced back to the
trials that made it. Example: :class:`HeadScores`.
"""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from rhlens.files import atomic_path
from rhlens.heads import Head, HeadSet

_FORMAT = "rhlens.HeadScores/1"


@dataclass
class RetrievalTrials:
    """What Wu et al.'s retrieval score keeps of each trial (:attr:`HeadScores.trials`).

    Attributes:
        responses: per example, the decoded response (``method="forced"``: the teacher-forced
            greedy predictions; see :func:`rhlens.retrieval_scores`).
        hits: int ``[n_examples, n_layers, n_heads]`` number of scored steps at which the head
            copied an answer-span token.
        answer_tokens: int ``[n_examples]`` answer-span token count (the score's denominator).
        rouge: ``[n_examples]`` the gate's value: ROUGE-1 recall of the answer (best over its
            aliases) in the response, or its exact match with ``gate="exact"``; it sets
            :attr:`HeadScores.counted`.
    """

    responses: list[str]
    hits: Int[Tensor, "example layer head"] | None = None
    answer_tokens: Int[Tensor, "example"] | None = None
    rouge: Float[Tensor, "example"] | None = None

    _TENSORS = ("hits", "answer_tokens", "rouge")


@dataclass
class HeadScores:
    """Scores per attention head from a detector (e.g. Wu et al.'s retrieval score).

    Attributes:
        per_example: ``[n_examples, n_layers, n_heads]`` score of each head on each example,
            counted or not (Wu et al.: hits / answer-span tokens).
        counted: bool ``[n_examples]``: the example enters the mean (Wu et al.: it passed the
            ROUGE gate); ``None`` (the default) counts every example.
        n_kv_heads: key/value heads per layer (GQA), for :meth:`by_kv_group`; ``None``: unknown.
        meta: how the scores were made (detector, method, top_k, rouge_gate, model shape ...).
        trials: Wu et al.'s per-trial extras (:class:`RetrievalTrials`: responses, hits, answer
            tokens, ROUGE), or ``None`` for detectors without them and for scores read from
            Wu's JSON.

    ``scores`` ``[n_layers, n_heads]`` is the mean of ``per_example`` over counted examples
    (zeros when none counted, and the repr says so), indexed by query head.

    >>> import torch
    >>> per_example = torch.tensor([[[0.0, 1.0], [0.5, 0.0]],
    ...                             [[0.0, 0.5], [0.0, 0.0]],
    ...                             [[1.0, 1.0], [1.0, 1.0]]])
    >>> hs = HeadScores(per_example=per_example, counted=torch.tensor([True, True, False]))
    >>> hs.scores
    tensor([[0.0000, 0.7500],
            [0.2500, 0.0000]])
    >>> hs.top(1), hs.above(0.1)
    (HeadSet([L0H1]), HeadSet([L0H1, L1H0]))
    >>> hs.top(3), hs.top(3, include_zero=True)  # zero-score heads are no retrieval heads
    (HeadSet([L0H1, L1H0]), HeadSet([L0H0, L0H1, L1H0]))
    >>> hs
    HeadScores(2x2 heads, 2/3 examples counted, method='?', heads by score: L0H1=0.750, L1H0=0.250, 2 at 0)
    >>> hs.to_wu_json()
    {'0-0': [0.0, 0.0], '0-1': [1.0, 0.5], '1-0': [0.5, 0.0], '1-1': [0.0, 0.0]}
    >>> HeadScores.from_wu_json(hs.to_wu_json()).scores.equal(hs.scores)
    True
    """

    per_example: Float[Tensor, "example layer head"]
    counted: Bool[Tensor, "example"] | None = None
    n_kv_heads: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    trials: RetrievalTrials | None = None

    def __post_init__(self) -> None:
        if self.per_example.ndim != 3:
            raise ValueError(f"per_example must be [example, layer, head], got shape {tuple(self.per_example.shape)}")
        n = self.per_example.shape[0]
        if self.counted is None:
            self.counted = torch.ones(n, dtype=torch.bool)
        self.counted = self.counted.to(torch.bool).cpu()
        if self.counted.shape != (n,):
            raise ValueError(f"per_example has {n} examples but counted has shape {tuple(self.counted.shape)}")
        if self.trials is not None and len(self.trials.responses) != n:
            raise ValueError(f"per_example has {n} examples but trials.responses has {len(self.trials.responses)} entries")
        if self.n_kv_heads is not None and self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads={self.n_heads} is not a multiple of n_kv_heads={self.n_kv_heads}")

    # --- shape ------------------------------------------------------------------------------
    @property
    def n_examples(self) -> int:
        return int(self.per_example.shape[0])

    @property
    def n_layers(self) -> int:
        return int(self.per_example.shape[1])

    @property
    def n_heads(self) -> int:
        return int(self.per_example.shape[2])

    @property
    def n_counted(self) -> int:
        return int(self.counted.sum())

    @property
    def scores(self) -> Float[Tensor, "layer head"]:
        """Mean ``per_example`` over counted examples; zeros when no example passed the gate."""
        if not self.counted.any():
            return torch.zeros(self.n_layers, self.n_heads)
        return self.per_example[self.counted].double().mean(dim=0).float()

    def __repr__(self) -> str:
        head = (
            f"HeadScores({self.n_layers}x{self.n_heads} heads, {self.n_counted}/{self.n_examples} examples "
            f"counted, method={self.meta.get('method', '?')!r}"
        ) + (f", rule={self.meta['rule']!r}" if self.meta.get("rule", "rhlens") != "rhlens" else "")
        if not self.n_counted:
            gate = self.meta.get("rouge_gate")
            why = f" (answer ROUGE-1 recall > {gate})" if gate is not None else ""
            return f"{head}, no example passed the gate{why}: every score is 0)"
        scores = self.scores
        ranked = self.top(min(5, self.n_layers * self.n_heads)).ordered()
        listed = ", ".join(f"{h}={scores[h.layer, h.head]:.3f}" for h in ranked)
        zeros = int((scores <= 0).sum())
        return f"{head}, heads by score: {listed or 'none above 0'}{f', {zeros} at 0' if zeros else ''})"

    # --- head sets --------------------------------------------------------------------------
    def plot(self, **kwargs: Any) -> Any:
        """:func:`rhlens.plot.head_heatmap` of :attr:`scores` (a plotly ``Figure``; not shown).

        ``rhlens.plot`` sits above the analyzers, so it is imported when a figure is asked for.
        """
        from rhlens.plot import head_heatmap

        return head_heatmap(self, **kwargs)

    def top(self, k: int, *, include_zero: bool = False) -> HeadSet:
        """The ``k`` highest-scoring heads (ties: lower layer, then head, first); its
        ``ordered()`` lists them best first (:meth:`HeadSet.ranked`).

        Heads scoring 0 are left out (ties at zero are no retrieval heads), so fewer than ``k``
        may come back; ``include_zero=True`` fills up to ``k`` with them.

        >>> HeadScores(torch.tensor([[[0.2, 0.0], [0.9, 0.4]]])).top(3).ordered()
        [Head(layer=1, head=0), Head(layer=1, head=1), Head(layer=0, head=0)]
        """
        scores = self.scores
        best = sorted(HeadSet.top_k(scores, k), key=lambda h: (-float(scores[h.layer, h.head]), h))
        return HeadSet.ranked(h for h in best if include_zero or scores[h.layer, h.head] > 0)

    def above(self, threshold: float = 0.1) -> HeadSet:
        """Heads scoring strictly above ``threshold`` (Wu et al.'s retrieval heads: > 0.1)."""
        return HeadSet.above(self.scores, threshold)

    def recall(self, reference: Iterable[Any], *, k: int | None = None, threshold: float = 0.1) -> float:
        """Fraction of ``reference`` heads (a HeadSet, Heads or labels) found here: among
        :meth:`top` ``(k)`` when ``k`` is given, else among :meth:`above` ``(threshold)``.

        Raises ``ValueError`` for an empty reference (recall is undefined there, not 1.0).

        >>> hs = HeadScores(torch.tensor([[[0.5, 0.0], [0.2, 0.05]]]))
        >>> hs.recall(["L0H0", "L1H1"]), hs.recall(["L0H0", "L1H1"], k=3)
        (0.5, 1.0)
        >>> hs.recall(["L0H0", "L1H1"], k=2)
        0.5
        """
        ref = HeadSet(reference)
        if not ref:
            raise ValueError("recall against an empty reference is undefined: give at least one reference head")
        found = self.top(k) if k is not None else self.above(threshold)
        return len(found & ref) / len(ref)

    def by_kv_group(self, reduce: str = "max") -> Float[Tensor, "layer kv_head"]:
        """Scores per key/value group ``[n_layers, n_kv_heads]``: ``reduce`` over the query heads
        sharing each key/value head (query head ``h`` is in group ``h // (n_heads // n_kv_heads)``).

        >>> hs = HeadScores(torch.tensor([[[0.1, 0.3, 0.0, 0.2]]]), n_kv_heads=2)
        >>> hs.by_kv_group("max"), hs.by_kv_group("mean")
        (tensor([[0.3000, 0.2000]]), tensor([[0.2000, 0.1000]]))
        """
        if self.n_kv_heads is None:
            raise ValueError("These scores do not record n_kv_heads; set HeadScores.n_kv_heads (e.g. model.cfg.n_key_value_heads)")
        grouped = self.scores.reshape(self.n_layers, self.n_kv_heads, self.n_heads // self.n_kv_heads)
        if reduce == "max":
            return grouped.amax(dim=-1)
        if reduce == "mean":
            return grouped.mean(dim=-1)
        raise ValueError(f"reduce must be 'max' or 'mean', got {reduce!r}")

    # --- Wu et al.'s JSON -------------------------------------------------------------------
    def to_wu_json(self) -> dict[str, list[float]]:
        """``{"<layer>-<head>": [score per counted example]}``, the format of Wu et al.'s
        ``head_score/*.json`` files (``json.dump`` it to write one)."""
        counted = self.per_example[self.counted]
        return {
            Head(l, h).wu_key: [float(v) for v in counted[:, l, h].tolist()]
            for l in range(self.n_layers)
            for h in range(self.n_heads)
        }

    @classmethod
    def from_wu_json(cls, data: "dict[str, list[float]] | str | os.PathLike", *, n_kv_heads: int | None = None) -> "HeadScores":
        """Read Wu et al.'s format (a dict, or the path of a JSON file). Every example is counted
        (their files hold counted trials only); there are no :attr:`trials`."""
        source = "dict"
        if not isinstance(data, dict):
            source = os.fspath(data)
            with open(source, encoding="utf-8") as f:
                data = json.load(f)
        if not data:
            raise ValueError(f"{source}: no heads in Wu et al. score data")
        heads = {}
        for key, values in data.items():
            try:
                head = Head.parse(key)
            except ValueError:
                raise ValueError(f"{source}: key {key!r} is not '<layer>-<head>'") from None
            heads[head] = list(values)
        lengths = {len(v) for v in heads.values()}
        if len(lengths) != 1:
            raise ValueError(f"{source}: heads have different numbers of trials {sorted(lengths)}; expected one list length")
        n = lengths.pop()
        n_layers = 1 + max(h.layer for h in heads)
        n_heads = 1 + max(h.head for h in heads)
        missing = n_layers * n_heads - len(heads)
        if missing:
            raise ValueError(f"{source}: {missing} of {n_layers}x{n_heads} heads are missing")
        per_example = torch.zeros(n, n_layers, n_heads)
        for head, values in heads.items():
            try:
                per_example[:, head.layer, head.head] = torch.tensor(values, dtype=torch.float32)
            except (TypeError, ValueError):
                raise ValueError(f"{source}: head {head.layer}-{head.head} holds {values!r:.80}, not a list of numbers") from None
            bad = [v for v in values if isinstance(v, bool) or not 0.0 <= v <= 1.0]  # NaN fails too
            if bad:
                raise ValueError(f"{source}: head {head.layer}-{head.head} has score {bad[0]!r}; a retrieval score is "
                                 "the share of a needle's tokens a head copied, from 0 to 1")
        return cls(
            per_example=per_example,
            n_kv_heads=n_kv_heads,
            meta={"source": "wu_json"},
        )

    # --- tables -----------------------------------------------------------------------------
    def to_dataframe(self) -> Any:
        """A pandas DataFrame with one row per head: ``layer, head, label, kv_head, score``,
        sorted by score (highest first). pandas is imported here, not at module import."""
        import pandas as pd

        scores = self.scores
        group = self.n_heads // self.n_kv_heads if self.n_kv_heads else None
        rows = [
            {
                "layer": l,
                "head": h,
                "label": str(Head(l, h)),
                "kv_head": (h // group) if group else None,
                "score": float(scores[l, h]),
            }
            for l in range(self.n_layers)
            for h in range(self.n_heads)
        ]
        df = pd.DataFrame(rows)
        return df.sort_values(["score", "layer", "head"], ascending=[False, True, True], kind="stable").reset_index(drop=True)

    # --- files ------------------------------------------------------------------------------
    def save(self, path: "str | os.PathLike") -> Path:
        """Write one ``.safetensors`` file (tensors; responses and meta as JSON in its header),
        to a temporary file first, then renamed into place."""
        from safetensors.torch import save_file

        path = Path(path)
        tensors = {"per_example": self.per_example.float().contiguous().cpu(), "counted": self.counted.to(torch.uint8)}
        trials = self.trials
        for name in RetrievalTrials._TENSORS if trials is not None else ():
            value = getattr(trials, name)
            if value is not None:
                tensors[name] = value.contiguous().cpu()
        header = {"format": _FORMAT, "responses": None if trials is None else trials.responses,
                  "n_kv_heads": self.n_kv_heads, "meta": self.meta}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={"rhlens": json.dumps(header)})
        return path

    @classmethod
    def load(cls, path: "str | os.PathLike") -> "HeadScores":
        """Read a file written by :meth:`save`."""
        from safetensors import safe_open

        path = os.fspath(path)
        with safe_open(path, framework="pt") as f:
            raw = (f.metadata() or {}).get("rhlens")
            if raw is None:
                raise ValueError(f"{path}: not a HeadScores file (no 'rhlens' header); write it with HeadScores.save")
            header = json.loads(raw)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if header.get("format") != _FORMAT:
            raise ValueError(f"{path}: format {header.get('format')!r}, expected {_FORMAT!r}")
        trials = None
        if header.get("responses") is not None:
            trials = RetrievalTrials(
                responses=list(header["responses"]),
                hits=tensors.get("hits"),
                answer_tokens=tensors.get("answer_tokens", tensors.get("needle_tokens")),  # former name
                rouge=tensors.get("rouge"),
            )
        return cls(
            per_example=tensors["per_example"],
            counted=tensors["counted"].bool(),
            n_kv_heads=header.get("n_kv_heads"),
            meta=dict(header.get("meta") or {}),
            trials=trials,
        )
