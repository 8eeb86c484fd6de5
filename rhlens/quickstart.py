"""The smallest end-to-end study: fine-tune the embedded base, score and knock out its heads.

:func:`run_quickstart` is what ``rhlens quickstart`` runs:

1. load the shipped base model (:func:`rhlens.models.load_base`);
2. fine-tune it with :func:`rhlens.train` on a synthetic task;
3. evaluate it on fresh examples (:func:`rhlens.evaluate`);
4. score every head's retrieval ability (:func:`rhlens.retrieval_scores`, Wu et al.'s decode
   method);
5. knock out the top-k retrieval heads and k random heads (:func:`rhlens.knockout_effect`).

Everything lands in the output folder: the fine-tuned model, the head scores (safetensors +
JSON, and Wu et al.'s JSON format), and ``summary.json``.
"""

from pathlib import Path
from typing import Any

from rhlens.files import write_json_atomic


def run_quickstart(
    out_dir: str | Path,
    *,
    task: str = "kv",
    variant: str = "realistic",
    context_tokens: int = 64,
    steps: int = 150,
    n_eval: int = 40,
    top_k: int = 4,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the quickstart study and return its summary (also written to ``summary.json``)."""
    from rhlens.evaluation import evaluate
    from rhlens.interventions import knockout_effect, random_heads
    from rhlens.models import load_base, save_model
    from rhlens.scoring import retrieval_scores
    from rhlens.tasks import generate
    from rhlens.training import TrainConfig, train

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = load_base()
    batch_size = 16
    train_examples = generate(task, variant, steps * batch_size, context_tokens=context_tokens, seed=seed)
    eval_examples = generate(task, variant, n_eval, context_tokens=context_tokens, seed=seed + 10_000)

    before = evaluate(model, eval_examples, progress=progress)
    result = train(
        model, train_examples,
        TrainConfig(steps=steps, batch_size=batch_size, lr=1e-3, warmup_steps=min(20, steps // 5), seed=seed, progress=progress),
    )
    after = evaluate(model, eval_examples, progress=progress)
    scores = retrieval_scores(model, eval_examples, method="decode", progress=progress)
    # the k best heads among those that scored at all (ties at zero say nothing)
    top = scores.top(top_k) & scores.above(0.0)
    control = random_heads(model, len(top), exclude=top, seed=seed)
    top_effect = knockout_effect(model, eval_examples, top, mode="zero", baseline=after, progress=progress)
    random_effect = knockout_effect(model, eval_examples, control, mode="zero", baseline=after, progress=progress)

    save_model(model, out_dir / "model")
    scores.save(out_dir / "retrieval_scores")
    write_json_atomic(out_dir / "retrieval_scores_wu.json", scores.to_wu_json(), indent=None)

    summary = {
        "task": task,
        "variant": variant,
        "context_tokens": context_tokens,
        "fine_tuning_steps": steps,
        "final_train_loss": round(result.loss_curve[-1], 4),
        "score_before_fine_tuning": round(before.score, 3),
        "score_after_fine_tuning": round(after.score, 3),
        "examples_counted_for_retrieval_scores": int(scores.n_counted),
        "top_retrieval_heads": {str(h): round(float(scores.scores[h.layer, h.head]), 3) for h in top},
        "retrieval_heads_over_0.1": [str(h) for h in scores.above(0.1)],
        "knockout_top_heads": {"heads": [str(h) for h in top], "score": round(top_effect.knocked.score, 3),
                               "delta": round(top_effect.delta, 3)},
        "knockout_random_heads": {"heads": [str(h) for h in control], "score": round(random_effect.knocked.score, 3),
                                  "delta": round(random_effect.delta, 3)},
    }
    write_json_atomic(out_dir / "summary.json", summary)
    return summary
