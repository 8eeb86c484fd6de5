"""Evaluate a model on examples: greedy generation scored by the task's metric, or the
teacher-forced log-probability of the gold answer.

Two kinds of metric:

- a text metric ``(prediction: str, example) -> float`` (``None``: each example's task default,
  :func:`rhlens.tasks.default_metric`): the model answers by batched greedy decoding (the loop of
  :mod:`rhlens.engine`, chunked prefill through the KV cache), the answer is scored.
- ``"logprob"``: teacher-forced ``log P(answer | prompt)``, the sum over the answer's tokens
  (``" " + answer``, no EOS) of the log-probability of each gold token. One forward per batch, no
  decoding; exact and smooth, so small interventions show up. Predictions are ``None``.

Hooks attached around :func:`evaluate` (e.g. :func:`rhlens.knockout`) stay active for every
forward, and the run goes through the same engine and kernels with or without them (example:
:func:`evaluate`).

Memory: the teacher-forced path materialises logits ``[batch, pos, d_vocab]`` per chunk; pass
``chunk_size`` to run long prompts through the KV cache in pieces (only the answer rows are
kept).
"""

from dataclasses import dataclass, fields, replace
from typing import Any, Callable, Mapping, Sequence, TypedDict, Union

from typing_extensions import Unpack

import torch
from jaxtyping import Float
from torch import Tensor

from rhlens import engine
from rhlens.adapter import Model, tokenizer_of
from rhlens.encoding import encode_for_model
from rhlens.stopping import default_stop_ids
from rhlens.tasks.metrics import default_metric

TextMetric = Callable[[str, Any], float]
Metric = Union[TextMetric, str, None]

LOGPROB = "logprob"


@dataclass(frozen=True)
class RunOptions:
    """How an analyzer runs its examples: the one keyword tail of :func:`evaluate`,
    :func:`rhlens.knockout_effect`, :func:`rhlens.patch_heads` and :func:`rhlens.patching_table`.

    Pass it as ``options=`` or give its fields as keywords (keywords override ``options``).

    Attributes:
        metric: ``None`` (each example's task default metric on greedy output), a callable
            ``(prediction, example) -> float``, or ``"logprob"`` (teacher-forced log-prob of the
            gold answer; see the module docstring).
        max_new_tokens: greedy decoding budget per example (text metrics); decoding stops at
            :func:`rhlens.stopping.default_stop_ids`.
        batch_size: examples per forward (batches are sorted by length).
        chunk_size: prompt chunk length through the KV cache (``None``: whole prompt at once).
        progress: a tqdm bar over batches.

    >>> opts = RunOptions(metric="logprob", progress=False)
    >>> RunOptions.merge(opts, {"batch_size": 2}, what="evaluate").batch_size
    2
    """

    metric: "Metric" = None
    max_new_tokens: int = 32
    batch_size: int = 8
    chunk_size: int | None = 512
    progress: bool = True

    @classmethod
    def merge(cls, options: "RunOptions | None", overrides: Mapping[str, object], *, what: str) -> "RunOptions":
        """``options`` (default: ``RunOptions()``) with ``overrides`` applied; a ``TypeError``
        naming ``what`` for a keyword that is not a field."""
        base = cls() if options is None else options
        if not isinstance(base, cls):
            raise TypeError(f"{what}: options must be an rhlens.RunOptions, got {type(base).__name__}")
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise TypeError(f"{what}() got unexpected keyword(s) {', '.join(unknown)}; run options are {', '.join(names)}")
        return replace(base, **overrides) if overrides else base


class RunKwargs(TypedDict, total=False):
    """:class:`RunOptions` fields given as keywords (for type checkers)."""

    metric: "Metric"
    max_new_tokens: int
    batch_size: int
    chunk_size: int | None
    progress: bool


def require_pandas() -> Any:
    """The ``pandas`` module, or an ``ImportError`` saying how to install it."""
    try:
        import pandas
    except ImportError:  # pragma: no cover - pandas is a dev extra
        raise ImportError("to_dataframe() needs pandas: pip install pandas") from None
    return pandas


@dataclass
class EvalResult:
    """Scores of one model on a list of examples.

    Attributes:
        per_example: ``[n_examples]`` score of each example (task metric, or the teacher-forced
            log-prob of the gold answer for ``metric="logprob"``).
        predictions: decoded greedy answers, or ``None`` for teacher-forced metrics.
        metric: the metric's name.

    >>> r = EvalResult(per_example=torch.tensor([1.0, 0.0]), predictions=["a", "b"])
    >>> r.score, len(r)
    (0.5, 2)
    """

    per_example: Float[Tensor, "example"]
    predictions: list[str] | None = None
    metric: str = "task default"

    def __post_init__(self) -> None:
        self.per_example = torch.as_tensor(self.per_example, dtype=torch.float32).detach().cpu().flatten()
        if self.predictions is not None and len(self.predictions) != len(self.per_example):
            raise ValueError(
                f"EvalResult has {len(self.per_example)} scores but {len(self.predictions)} predictions"
            )

    @property
    def score(self) -> float:
        """Mean of :attr:`per_example` (NaN for no examples)."""
        return float(self.per_example.mean()) if len(self.per_example) else float("nan")

    def __len__(self) -> int:
        return len(self.per_example)

    def to_dataframe(self) -> Any:
        """One row per example: ``example``, ``score`` and ``prediction``."""
        pd = require_pandas()
        data: dict[str, Any] = {"example": range(len(self)), "score": self.per_example.tolist()}
        if self.predictions is not None:
            data["prediction"] = list(self.predictions)
        return pd.DataFrame(data)


def text_metrics(examples: Sequence[Any], metric: TextMetric | None) -> list[TextMetric]:
    """One text metric per example: ``metric``, or each example's task default."""
    if metric is not None:
        if not callable(metric):
            raise TypeError(f"metric must be callable (prediction, example) -> float or {LOGPROB!r}, got {metric!r}")
        return [metric] * len(examples)
    cache: dict[str, TextMetric] = {}
    out = []
    for i, ex in enumerate(examples):
        task = getattr(ex, "task", None)
        if task not in cache:
            try:
                cache[task] = default_metric(task)
            except ValueError as err:
                raise ValueError(f"Example {i}: {err}. Pass metric=(prediction, example) -> float") from None
        out.append(cache[task])
    return out


def is_logprob(metric: Metric) -> bool:
    """Whether ``metric`` is ``"logprob"`` (any other string is an error)."""
    if isinstance(metric, str):
        if metric != LOGPROB:
            raise ValueError(f"Unknown metric {metric!r}: pass {LOGPROB!r} or a callable (prediction, example) -> float")
        return True
    return False


def metric_name(metric: Metric) -> str:
    if metric is None:
        return "task default"
    return LOGPROB if isinstance(metric, str) else getattr(metric, "__name__", "custom")


def run_metric(
    models: Sequence[Model],
    examples: Sequence[Any],
    options: RunOptions,
    *,
    setup: engine.BatchSetup | None = None,
    what: str = "evaluate",
) -> EvalResult:
    """:func:`evaluate` of ``models[-1]`` with earlier models run in lockstep and ``setup`` entered
    around each batch (see :data:`rhlens.engine.BatchSetup`): the entry point for interventions
    that need per-batch hooks, e.g. cross-model patching. With ``models=[model]`` and no setup it
    is :func:`evaluate`."""
    target, o = models[-1], options
    if is_logprob(o.metric):
        encoded = encode_for_model(target, examples, what=what, with_answer=True, append_eos=False)
        per = engine.answer_logprobs(
            models, encoded, batch_size=o.batch_size, chunk_size=o.chunk_size, progress=o.progress, desc=what, setup=setup
        )
        return EvalResult(per_example=per.float(), predictions=None, metric=LOGPROB)
    encoded = encode_for_model(target, examples, what=what, with_answer=False, extra_tokens=o.max_new_tokens)
    fns = text_metrics(examples, o.metric)  # fail on an unknown task before generating
    tok = tokenizer_of(target)
    gen = engine.greedy_tokens(
        models, [e.tokens for e in encoded], max_new_tokens=o.max_new_tokens, stop=default_stop_ids(tok),
        chunk_size=o.chunk_size, batch_size=o.batch_size, progress=o.progress, desc=what, encoded=encoded, setup=setup,
    )
    predictions = gen.texts(tok)
    scores = [float(fn(p, ex)) for fn, p, ex in zip(fns, predictions, examples)]
    return EvalResult(per_example=torch.tensor(scores, dtype=torch.float32), predictions=predictions, metric=metric_name(o.metric))


def evaluate(
    model: Model, examples: Sequence[Any], *, options: RunOptions | None = None, **run: Unpack[RunKwargs]
) -> EvalResult:
    """Score ``model`` on ``examples``.

    Args:
        model: a HookedTransformer or TransformerBridge with a tokenizer (eval/inference mode
            inside, previous mode restored).
        examples: :class:`rhlens.tasks.Example` records (each checked with ``validate()``).
        options: a :class:`RunOptions` (metric, decoding budget, batching, progress bar);
            keywords of the same names (``metric="logprob"``, ``max_new_tokens=8`` ...) override
            its fields. Every analyzer (``knockout_effect``, ``patch_heads``, ``patching_table``)
            takes the same.

    Returns:
        :class:`EvalResult` with ``score`` (mean), ``per_example`` ``[n_examples]`` and
        ``predictions`` (decoded, stripped; ``None`` for ``"logprob"``).

    Raises:
        TypeError: an element of ``examples`` is not an ``Example`` (e.g. a dict), naming its index,
            or an unknown keyword.
        ValueError: an invalid example (naming its index), an unknown metric, or an example too
            long for the model's context.

    >>> from rhlens.models import tiny_llama, word_level_tokenizer
    >>> from rhlens.tasks import Example
    >>> ex = Example("Ann lives in Rome .\\nAnswer:", "Rome", ((13, 17),), "niah", "real")
    >>> model = tiny_llama(tokenizer=word_level_tokenizer([ex.prompt + ex.completion]))
    >>> result = evaluate(model, [ex], max_new_tokens=2, progress=False)
    >>> result.per_example.shape, len(result.predictions)
    (torch.Size([1]), 1)
    >>> lp = evaluate(model, [ex], metric="logprob", progress=False)
    >>> bool(lp.score < 0), lp.predictions is None, lp.metric
    (True, True, 'logprob')
    """
    return run_metric([model], examples, RunOptions.merge(options, run, what="evaluate"))


def baseline_or_evaluate(
    baseline: EvalResult | None, model: Model, examples: Sequence[Any], options: RunOptions, *, what: str = "evaluate"
) -> EvalResult:
    """``baseline`` when given (checked to hold one score per example), else :func:`evaluate` of
    ``model``: how an analyzer reuses an intact model's result across several interventions.
    ``what`` (the analyzer's name) heads the errors."""
    if baseline is None:
        return run_metric([model], examples, options, what=what)
    if len(baseline) != len(examples):
        raise ValueError(f"{what}: baseline has {len(baseline)} scores but there are {len(examples)} examples")
    return baseline
