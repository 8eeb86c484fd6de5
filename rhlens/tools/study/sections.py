"""The sections of a :class:`rhlens.tools.study.config.StudyConfig` (``[model]``, ``[data]``, ``[finetune]``,
``[evaluate]``, ``[scores]``, ``[knockout]``, ``[patching]``, ``[estimate]``) and the values
their keys may take."""

from dataclasses import dataclass, field

from rhlens.tasks.registry import studied_tasks

PRESETS = ("tiny", "smoke", "paper")
EMBEDDED = "embedded"


def study_tasks() -> tuple[str, ...]:
    """The tasks a study may fine-tune on: every registered task with a real-data loader."""
    import rhlens.tasks  # noqa: F401  (registers the built-in tasks)

    return studied_tasks()


def score_methods() -> tuple[str, ...]:
    """The retrieval-score methods (:func:`rhlens.retrieval_scores`' ``method``)."""
    from rhlens.scoring.answer_spans import METHODS

    return tuple(METHODS)


def score_rules() -> tuple[str, ...]:
    """The retrieval-score rules (:func:`rhlens.retrieval_scores`' ``rule``)."""
    from rhlens.scoring.answer_spans import RULES

    return tuple(RULES)


def score_gates() -> tuple[str, ...]:
    """The retrieval-score gates (:func:`rhlens.retrieval_scores`' ``gate``)."""
    from rhlens.scoring.rouge_gate import GATES

    return tuple(GATES)


@dataclass(frozen=True)
class ModelSection:
    """``[model]``: the base every training set fine-tunes a copy of.

    base: ``"embedded"`` (rhlens's shipped base, :func:`rhlens.load_base`), a folder written by
        :func:`rhlens.save_model`, or a local Hugging Face checkpoint folder (``config.json``).
    dtype: weights' dtype when loading a Hugging Face checkpoint (``"float32"``, ``"bfloat16"``,
        ``"float16"``).
    device: ``"cpu"``, ``"cuda"``, ``"cuda:0"`` ...
    n_ctx: the context length to extend the base to before fine-tuning (0: keep the base's).
    rotary_base: the new RoPE base (theta) set with the extension (0: keep the base's).
    """

    base: str = EMBEDDED
    dtype: str = "float32"
    device: str = "cpu"
    n_ctx: int = 0
    rotary_base: float = 0.0


@dataclass(frozen=True)
class DataSection:
    """``[data]``: the training and test sets.

    context_tokens: tokens of a whole training example (BOS + prompt + answer + EOS); every
        example is checked to fit, and the model's context must hold it.
    answer_tokens: room kept for the answer, its EOS and decoding within ``context_tokens``; the
        prompt's budget is ``context_tokens - answer_tokens - 1`` (the 1 is BOS).
    n_train: training examples of the real set and of each synthetic set.
    n_limited: examples of the limited real subset (the first ``n_limited`` of the real set).
    n_test: real test examples every model is evaluated on.
    real_variant: with no real files for a task, the generated variant that stands in for real
        data (the most realistic one).
    variants: the synthetic training sets (``rhlens.VARIANTS``); without real files the
        ``real_variant`` may not be among them (it would train the same model twice).
    real_files: per task, ``{train = PATH, test = PATH}`` in the real formats
        (``rhlens.tasks.loaders``); relative paths are relative to the working folder. Examples that
        do not fit ``context_tokens`` are dropped (counted in the results).
    n_docs: documents per generated MDQA / MuSiQue / SummHay prompt (0: the generator's default).
    real_question: how the generated real stand-in asks (MDQA and NIAH; ignored with real files):
        ``"template"``, the relation's question as in every synthetic set, or ``"paraphrase"``, a
        held-out form (``What is the country of Turin?`` for ``In which country is Turin?``) that
        no synthetic set uses, so the real stand-in differs from every synthetic set as real
        questions differ from templated ones.
    test_depth: where the generated real test puts its needle, as a depth fraction of the
        documents (``0.0``: the first document, farthest from the question; ``1.0``: the last),
        or ``-1`` for a random document per example, as in every training set (ignored with real files).
    """

    context_tokens: int = 256
    answer_tokens: int = 24
    n_train: int = 1200
    n_limited: int = 200
    n_test: int = 50
    real_variant: str = "realistic"
    variants: tuple[str, ...] = ("realistic-filler", "fictional", "fictional-filler", "symbolic")
    real_files: dict = field(default_factory=dict)
    n_docs: int = 0
    real_question: str = "template"
    test_depth: float = -1.0


@dataclass(frozen=True)
class FinetuneSection:
    """``[finetune]``: :class:`rhlens.TrainConfig` values shared by every fine-tune.

    steps, batch_size, lr, warmup_steps, grad_accum_steps: the optimisation.
    trainable: ``"all"``, ``"attention"`` or ``"lora"`` (adapters on ``lora_targets``, rank
        ``lora_rank``, scale ``lora_alpha``; merged when saved).
    save_every: checkpoint every N steps, so an interrupted fine-tune resumes (0: only at the end).
    """

    steps: int = 150
    batch_size: int = 8
    lr: float = 1e-3
    warmup_steps: int = 15
    grad_accum_steps: int = 1
    trainable: str = "all"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = ("q", "k", "v", "o")
    save_every: int = 50


@dataclass(frozen=True)
class EvaluateSection:
    """``[evaluate]``: greedy decoding on the real test set, scored by the task's metric.

    max_new_tokens: decoding budget (at most ``data.answer_tokens``); batch_size: examples per
    forward.
    """

    max_new_tokens: int = 16
    batch_size: int = 8


@dataclass(frozen=True)
class ScoresSection:
    """``[scores]``: Wu et al.'s retrieval scores of every head of every model.

    methods: ``"decode"`` (Wu et al.) and/or ``"forced"`` (teacher-forced); the first is the one
        compare, knockout and patching use.
    n_examples: real test examples scored (the first ones).
    max_new_tokens: decoding budget of ``"decode"`` (at most ``data.answer_tokens``).
    threshold: heads scoring above it are retrieval heads (Wu et al.: 0.1).
    top_k: at most this many retrieval heads per model (the highest) enter compare, knockout and
        patching (the paper: 10... of 1,024 heads; scale it with the model).
    batch_size: examples per forward.
    detectors: head detectors compared on the real-data model (the ``detectors`` stage: agreement
        and knockout curves, :func:`rhlens.compare_detectors`); empty: the stage is skipped. Names
        from ``decode, forced, attention_mass, query_focus, attribution``.
    rule: ``"rhlens"`` (the documented rule) or ``"wu-literal"`` (Wu et al.'s code to the letter,
        ``methods = ["decode"]`` only; :func:`rhlens.retrieval_scores`).
    gate: what the ROUGE gate measures: ``"rouge"`` (Wu et al.) or ``"exact"`` (SQuAD exact match).
    """

    methods: tuple[str, ...] = field(default_factory=score_methods)
    n_examples: int = 50
    max_new_tokens: int = 16
    threshold: float = 0.1
    top_k: int = 10
    batch_size: int = 8
    detectors: tuple[str, ...] = ()
    rule: str = "rhlens"
    gate: str = "rouge"


@dataclass(frozen=True)
class KnockoutSection:
    """``[knockout]``: each model's retrieval heads against as many random heads.

    n_examples: real test examples evaluated (the first ones).
    n_random: random head sets drawn (seeds ``seed, seed + 1, ...``), none among the model's
        retrieval heads (all heads over ``scores.threshold``) when enough heads remain.
    mode: one of :data:`rhlens.interventions.options.KNOCKOUT_MODES`: ``"zero"`` (zero the head's output), ``"mean"`` or ``"uniform"`` (Wu et al.'s masking:
        the head attends uniformly).
    """

    n_examples: int = 50
    n_random: int = 3
    mode: str = "zero"


@dataclass(frozen=True)
class PatchingSection:
    """``[patching]``: the real-data model's head outputs patched into every other model.

    n_examples: real test examples (the first ones). n_random: random draws per random row.
    positions: where outputs are patched: one of :data:`rhlens.interventions.options.PATCH_POSITIONS`
        (``"all"``, ``"prompt"``, ``"answer"``, ``"needle"``).
    """

    n_examples: int = 30
    n_random: int = 2
    positions: str = "all"


@dataclass(frozen=True)
class EstimateSection:
    """``[estimate]``: assumptions of ``--dry-run``'s cost estimate.

    flops_per_second: sustained throughput of the machine (e.g. 2e10 for a laptop CPU core pair,
        3e14 for one H100 in bf16 at good utilisation).
    """

    flops_per_second: float = 2e10


_SECTIONS = {
    "model": ModelSection,
    "data": DataSection,
    "finetune": FinetuneSection,
    "evaluate": EvaluateSection,
    "scores": ScoresSection,
    "knockout": KnockoutSection,
    "patching": PatchingSection,
    "estimate": EstimateSection,
}
