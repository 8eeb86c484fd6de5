"""rhlens.evaluation (rhlens.evaluate): greedy evaluation and the teacher-forced log-prob metric."""

import pytest
import torch

import rhlens.evaluation as evaluate_module
from rhlens.adapter import forward
from rhlens.evaluation import evaluate
from rhlens.decoding import greedy_decode
from rhlens.models import tiny_llama, word_level_tokenizer
from rhlens.tasks import Example

PROMPTS = [
    ("Ann lives in Rome .\nQuestion: Where does Ann live ?\nAnswer:", "Rome"),
    ("Cat sat on the mat .\nQuestion: Where did the cat sit ?\nAnswer:", "the mat"),
    ("Dan owns a red car .\nQuestion: What colour ?\nAnswer:", "red"),
]


@pytest.fixture(scope="module")
def setup():
    examples = [Example(p, a, ((0, 3),), "niah", "real") for p, a in PROMPTS]
    tok = word_level_tokenizer([p + " " + a for p, a in PROMPTS])
    return tiny_llama(tokenizer=tok, seed=3), examples


def test_predictions_match_greedy_decode_and_batching(setup):
    model, examples = setup
    res = evaluate(model, examples, metric=lambda p, ex: float(len(p)), max_new_tokens=4, batch_size=2, progress=False)
    tok = model.tokenizer
    direct = greedy_decode(model, [tok(ex.prompt)["input_ids"] for ex in examples], max_new_tokens=4).texts(tok)
    assert res.predictions == direct
    assert res.per_example.tolist() == [float(len(p)) for p in direct]
    one = evaluate(model, examples, metric=lambda p, ex: 0.0, max_new_tokens=4, batch_size=1, progress=False)
    assert one.predictions == res.predictions


def test_default_metric_is_the_tasks(setup):
    model, examples = setup
    res = evaluate(model, examples, max_new_tokens=3, progress=False)
    from rhlens.tasks.metrics import default_metric

    assert res.per_example.tolist() == [default_metric("niah")(p, ex) for p, ex in zip(res.predictions, examples)]
    bad = [Example("x y", "y", ((0, 1),), "nosuchtask", "real")]
    with pytest.raises(ValueError, match="Example 0"):
        evaluate(model, bad, progress=False)


def test_logprob_equals_a_manual_forward(setup):
    model, examples = setup
    tok = model.tokenizer
    res = evaluate(model, examples, metric="logprob", batch_size=2, progress=False)
    assert res.predictions is None
    for i, ex in enumerate(examples):
        p = tok(ex.prompt)["input_ids"]
        a = tok(ex.completion, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            lp = forward(model, torch.tensor([p + a]))[0].log_softmax(-1)
        manual = sum(lp[len(p) - 1 + j, t].item() for j, t in enumerate(a))
        assert res.per_example[i].item() == pytest.approx(manual, abs=1e-4)
    chunked = evaluate(model, examples, metric="logprob", chunk_size=3, batch_size=3, progress=False)
    torch.testing.assert_close(chunked.per_example, res.per_example, rtol=1e-5, atol=1e-4)


def test_restores_mode_and_errors(setup):
    model, examples = setup
    model.train()
    try:
        evaluate(model, examples, metric="logprob", progress=False)
        assert model.training
    finally:
        model.eval()
    with pytest.raises(ValueError, match="Unknown metric 'f1'"):
        evaluate(model, examples, metric="f1")
    with pytest.raises(ValueError, match="at least one"):
        evaluate(model, [])


def test_public_name_is_the_function_even_after_the_module_is_imported():
    import rhlens

    assert rhlens.evaluate is evaluate
    assert evaluate_module.evaluate is evaluate


def test_run_options_object_equals_keywords_and_keywords_override(setup):
    """Issue 15 item 3: one options object for the analyzers' keyword tail."""
    from rhlens.evaluation import RunOptions

    model, examples = setup
    opts = RunOptions(metric="logprob", batch_size=2, progress=False)
    by_object = evaluate(model, examples, options=opts)
    by_keywords = evaluate(model, examples, metric="logprob", batch_size=2, progress=False)
    assert torch.equal(by_object.per_example, by_keywords.per_example) and by_object.metric == "logprob"
    text = evaluate(model, examples, options=opts, metric=lambda p, ex: float(len(p)), max_new_tokens=2)
    assert text.predictions is not None and len(text.predictions) == len(examples)  # the keyword won
    with pytest.raises(TypeError, match=r"evaluate\(\) got unexpected keyword\(s\) max_tokens; run options are metric"):
        evaluate(model, examples, max_tokens=3)
    with pytest.raises(TypeError, match="options"):  # the runtime type checker, or RunOptions.merge
        evaluate(model, examples, options={"metric": "logprob"})
