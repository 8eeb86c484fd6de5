"""The study's data stage: real and synthetic sets sized to fit the model's context.

Every example must fit ``[data] context_tokens`` whole: BOS + prompt + ``" " + answer`` + EOS.
Generated prompts get the budget ``context_tokens - answer_tokens - 1`` (counted with the model's
tokenizer), which leaves ``answer_tokens`` for the answer, its EOS and decoding; each example is
then encoded and checked. Real examples that do not fit are dropped and counted.

>>> from rhlens.models import load_base
>>> from rhlens.tools.study.config import StudyConfig
>>> cfg = StudyConfig.preset("smoke")
>>> sets, summary = build_sets(cfg, "mdqa", load_base().tokenizer)
>>> sorted(sets), summary["sets"]["real_train"]["max_tokens"] <= cfg.data.context_tokens
(['real_limited', 'real_test', 'real_train', 'synthetic_fictional', 'synthetic_realistic-filler', 'synthetic_symbolic'], True)
"""

import warnings
from pathlib import Path
from typing import Any, Callable

from rhlens.tools.study.config import StudyConfig


def example_tokens(tokenizer: Any, example: Any) -> int:
    """Tokens of the whole training example: BOS + prompt + answer + EOS."""
    from rhlens.encoding import encode_example

    return len(encode_example(tokenizer, example, with_answer=True, prepend_bos=True).tokens)


def _load_real(task: str, path: Path) -> list:
    from rhlens.tasks import get_task

    load = get_task(task).loader
    if load is None:
        raise ValueError(f"task {task!r} has no real-data loader; register one with rhlens.tasks.register_task(loader=)")
    return list(load(path))


def _fitting(examples: list, tokenizer: Any, limit: int) -> tuple[list, list[int], int]:
    """The examples that fit ``limit`` tokens, the kept lengths, and how many were dropped."""
    kept, lengths = [], []
    for ex in examples:
        n = example_tokens(tokenizer, ex)
        if n <= limit:
            kept.append(ex)
            lengths.append(n)
    return kept, lengths, len(examples) - len(kept)


def _stats(lengths: list[int]) -> dict[str, Any]:
    return {"n": len(lengths), "max_tokens": max(lengths), "mean_tokens": round(sum(lengths) / len(lengths), 1)}


def generation_note(extra: dict[str, Any] | None) -> str:
    """What a generated set's extra knobs say in the data summary's sources.

    >>> generation_note({"question_form": "paraphrase", "position": 0.0})
    ', paraphrase questions, needles at depth 0'
    >>> generation_note(None)
    ''
    """
    extra = extra or {}
    return ((f", {extra['question_form']} questions" if "question_form" in extra else "")
            + (f", needles at depth {extra['position']:g}" if "position" in extra else ""))


def build_sets(config: StudyConfig, task: str, tokenizer: Any, log: Callable[[str], None] = lambda msg: None,
               progress: bool = False) -> tuple[dict[str, list], dict[str, Any]]:
    """The named example sets of ``task`` (``real_train``, ``real_limited``, ``real_test``,
    ``synthetic_<variant>``) and a summary (sizes, token lengths, sources, seeds, drops).

    Raises ``ValueError`` naming the set, the example and both lengths when a generated example
    does not fit, or the file when too few real examples fit.
    """
    from rhlens.tasks import generate
    from rhlens.tasks.generators.common import QUESTION_TASKS

    d, limit, budget = config.data, config.data.context_tokens, config.prompt_tokens
    knobs: dict[str, Any] = {"n_docs": d.n_docs} if d.n_docs and task != "kv" else {}
    seeds = {"real_train": config.seed, "real_test": config.seed + 1, "synthetic": config.seed}
    sets: dict[str, list] = {}
    lengths_of: dict[str, list[int]] = {}
    summary: dict[str, Any] = {"task": task, "context_tokens": limit, "prompt_budget": budget,
                               "answer_tokens": d.answer_tokens, "sets": {}, "dropped": {}, "sources": {}}

    def generated(name: str, variant: str, n: int, seed: int, extra: dict[str, Any] | None = None) -> None:
        examples = generate(task, variant, n, context_tokens=budget, tokenizer=tokenizer, seed=seed, progress=progress,
                            **knobs, **(extra or {}))
        lengths = [example_tokens(tokenizer, ex) for ex in examples]
        for i, n_tok in enumerate(lengths):
            if n_tok > limit:
                raise ValueError(
                    f"{task}/{name}: generated example {i} is {n_tok} tokens (prompt budget {budget} + answer), over "
                    f"[data] context_tokens={limit}; raise [data] answer_tokens (now {d.answer_tokens}) or context_tokens"
                )
        sets[name], lengths_of[name] = examples, lengths
        summary["sets"][name] = _stats(lengths)
        summary["sources"][name] = f"generated {task}/{variant}{generation_note(extra)}, seed {seed}"

    files = config.real_files(task)
    if files is None:
        # the real stand-in's question form (a held-out paraphrase or the synthetic sets' template)
        real = {"question_form": d.real_question} if task in QUESTION_TASKS and d.real_question != "template" else None
        generated("real_train", d.real_variant, d.n_train, seeds["real_train"], real)
        depth = {"position": float(d.test_depth)} if d.test_depth >= 0 else {}
        generated("real_test", d.real_variant, d.n_test, seeds["real_test"], {**(real or {}), **depth} or None)
    else:
        for kind, name, n in (("train", "real_train", d.n_train), ("test", "real_test", d.n_test)):
            loaded = _load_real(task, files[kind])
            kept, lengths, dropped = _fitting(loaded, tokenizer, limit)
            if len(kept) < n:
                raise ValueError(
                    f"{files[kind]}: only {len(kept)} of {len(loaded)} examples fit [data] context_tokens={limit} "
                    f"(the study needs n_{'train' if kind == 'train' else 'test'}={n}); lower that count or raise context_tokens"
                )
            sets[name], lengths_of[name] = kept[:n], lengths[:n]
            summary["sets"][name] = _stats(lengths[:n])
            summary["dropped"][name] = dropped
            summary["sources"][name] = str(files[kind])
            if dropped:
                log(f"{task}: {dropped} of {len(loaded)} examples of {files[kind]} do not fit {limit} tokens; dropped")
    if files is not None:
        seen = {(ex.prompt, ex.answer) for ex in sets["real_train"]}
        leaked = sum((ex.prompt, ex.answer) in seen for ex in sets["real_test"])
        summary["test_in_train"] = leaked
        if leaked:
            warnings.warn(f"{task}: {leaked} of {len(sets['real_test'])} test examples ({files['test']}) are also training examples "
                f"({files['train']}); their accuracy measures memory, not retrieval", stacklevel=2)
    sets["real_limited"] = sets["real_train"][: d.n_limited]
    summary["sets"]["real_limited"] = _stats(lengths_of["real_train"][: d.n_limited])
    summary["sources"]["real_limited"] = f"the first {d.n_limited} of real_train"
    for variant in d.variants:
        generated(f"synthetic_{variant}", variant, d.n_train, seeds["synthetic"])
    summary["seeds"] = seeds
    return sets, summary
