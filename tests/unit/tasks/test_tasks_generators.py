import pytest

from rhlens.tasks import (TASKS, VARIANTS, ContextTooShortError, Example, count_tokens, generate,
                          niah_grid, pretokenize, vocabulary)
from rhlens.tasks.metrics import parse_citations

from tests.unit.tasks.tasks_helpers import DOCUMENT_TASKS, PAIRS, bpe_tokenizer, span_inside


def check_needles(ex: Example):
    ex.validate()
    assert ex.prompt.endswith("Answer:") or ex.prompt.endswith("Corresponding value:")
    texts = ex.needle_texts
    assert texts and all(texts)
    if ex.task == "summhay":
        # every needle (the insight) lies in a cited document, and every cited document holds one
        cited = [i - 1 for i in parse_citations(ex.answer)]
        assert cited == ex.meta["gold_docs"]
        docs = ex.meta["doc_spans"]
        for d in cited:
            assert sum(span_inside(n, docs[d]) for n in ex.needles) == 1
        assert all(t == ex.meta["insight"] for t in texts)
    else:
        assert any(ex.answer in t for t in texts), (ex.answer, texts)


@pytest.mark.parametrize("task,variant", PAIRS)
@pytest.mark.parametrize("context_tokens", [64, 256, 1024])
def test_pairs_needles_and_length_word_level(task, variant, context_tokens):
    exs = generate(task, variant, n=3, context_tokens=context_tokens, seed=5)
    assert len(exs) == 3
    for ex in exs:
        check_needles(ex)
        assert (ex.task, ex.variant) == (task, variant)
        n = count_tokens(ex.prompt)
        assert abs(n - context_tokens) <= 0.05 * context_tokens, n
        assert ex.meta["n_tokens"] == n
        assert ex.meta["seed"] == 5 and ex.meta["context_tokens"] == context_tokens


@pytest.mark.parametrize("task,variant", PAIRS)
def test_pairs_length_with_bpe_tokenizer(task, variant):
    tok = bpe_tokenizer()
    for ct in (200, 500):
        for ex in generate(task, variant, n=2, context_tokens=ct, tokenizer=tok, seed=1):
            check_needles(ex)
            n = len(tok.encode(ex.prompt).ids)
            assert abs(n - ct) <= 0.05 * ct, (n, ct)


def test_bpe_counts_differ_from_word_counts():
    tok = bpe_tokenizer()
    ex = generate("mdqa", "fictional", n=1, context_tokens=300, tokenizer=tok, seed=0)[0]
    assert count_tokens(ex.prompt) != len(tok.encode(ex.prompt).ids)
    assert ex.meta["tokenizer"] == "Tokenizer"


@pytest.mark.parametrize("task,variant", PAIRS)
def test_deterministic_by_seed(task, variant):
    a = generate(task, variant, n=2, context_tokens=160, seed=3)
    b = generate(task, variant, n=2, context_tokens=160, seed=3)
    c = generate(task, variant, n=2, context_tokens=160, seed=4)
    assert a == b
    assert a[0].prompt != c[0].prompt
    assert a[0].prompt != a[1].prompt


@pytest.mark.parametrize("task,variant", PAIRS)
def test_vocabulary_covers_everything(task, variant):
    vocab = set(vocabulary())
    for seed in range(4):
        for ct in (64, 300):
            for ex in generate(task, variant, n=2, context_tokens=ct, seed=seed):
                missing = set(pretokenize(ex.prompt + ex.completion)) - vocab
                assert not missing, missing


def test_vocabulary_is_small_and_sorted():
    v = vocabulary()
    assert v == sorted(set(v))
    assert 1000 < len(v) < 6000
    assert "\n" in v and "ba1" in v and "[" in v


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("task", DOCUMENT_TASKS)
@pytest.mark.parametrize("position", [0, 1, 1.0])
def test_document_position(task, variant, position):
    kw = {"n_docs": 4, "hops": 2} if task == "musique" else {"n_docs": 4}
    for ex in generate(task, variant, n=2, context_tokens=300, seed=2, position=position, **kw):
        want = 3 if isinstance(position, float) else position
        assert ex.meta["gold_doc"] == want
        doc = ex.meta["doc_spans"][want]
        if task == "musique":
            assert ex.meta["gold_docs"][0] == want
            assert span_inside(ex.needles[0], doc)
        else:
            assert any(span_inside(n, doc) for n in ex.needles)
        if task == "mdqa":
            assert sum(span_inside(ex.needles[0], d) for d in ex.meta["doc_spans"]) == 1


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("position", [0, 2, 0.5, 1.0])
def test_kv_position(variant, position):
    for ex in generate("kv", variant, n=2, context_tokens=200, seed=0, position=position):
        n = ex.meta["n_pairs"]
        want = position if isinstance(position, int) else round(position * (n - 1))
        assert ex.meta["gold_pair"] == want
        # the gold pair is the want-th line of the JSON object
        body = ex.prompt[ex.prompt.index("{"):ex.prompt.index("}")]
        line = body.split("\n")[want]
        assert f'"{ex.answer}"' in line and ex.meta["key"] in line


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("depth", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_niah_depth(variant, depth):
    for ct in (128, 600):
        ex = generate("niah", variant, n=1, context_tokens=ct, seed=1, position=depth)[0]
        start, end = ex.needles[0]
        hay_start = len("Read the text and answer the question.\n\n") if ex.meta["instruction"] else 0
        hay_end = ex.prompt.index("\n\nQuestion: ")
        before = count_tokens(ex.prompt[hay_start:start])
        after = count_tokens(ex.prompt[end:hay_end])
        measured = before / max(1, before + after)
        # the needle sits at a sentence boundary: allow one sentence of slack
        assert abs(measured - depth) <= 0.16, (measured, depth)
        assert ex.needle_texts[0] == ex.meta["needle"]


def test_niah_int_position_is_sentence_index():
    ex = generate("niah", "realistic-filler", n=1, context_tokens=200, seed=0, position=3)[0]
    assert ex.meta["sentence_index"] == 3
    assert ex.prompt[: ex.needles[0][0]].count(".") == 3


def test_niah_grid_cells_and_custom_needle():
    grid = niah_grid([64, 256], [0.0, 0.5, 1.0], needles=2, variant="fictional")
    assert len(grid) == 12
    cells = [(e.meta["context_tokens"], e.meta["position"]) for e in grid]
    assert cells[:2] == [(64, 0.0), (64, 0.0)] and cells[-1] == (256, 1.0)
    needle = ("The secret word is pomegranate.", "What is the secret word?", "pomegranate")
    grid = niah_grid([128], [0.3], needles=[needle], variant="realistic-filler")
    assert grid[0].answer == "pomegranate" and grid[0].needle_texts == (needle[0],)
    assert niah_grid([128], [0.3], needles=1, seed=7) == niah_grid([128], [0.3], needles=1, seed=7)


def test_custom_needle_answer_must_be_in_sentence():
    with pytest.raises(ValueError, match="not a whole word"):
        generate("niah", needle=("The sky is red.", "What colour?", "blue"), context_tokens=64)
    with pytest.raises(ValueError, match="not a whole word"):  # only inside "reddish"
        generate("niah", needle=("The sky is reddish.", "What colour?", "red"), context_tokens=64)
    ex = generate("niah", needle=("The sky is red.", "What colour?", "red"), context_tokens=64)[0]
    assert ex.answer_texts == ("red",)


def test_musique_hops_and_question_nesting():
    for hops in (2, 3, 4):
        ex = generate("musique", "realistic", n=1, context_tokens=400, seed=hops, hops=hops)[0]
        assert ex.meta["hops"] == hops == len(ex.needles) == len(set(ex.meta["gold_docs"]))
        # each hop's needle is its fact sentence, stating that hop's answer
        assert all(answer in text for answer, text in zip(ex.meta["hop_answers"], ex.needle_texts,
                                                           strict=True))
        assert ex.answer_texts == (ex.answer,)
        assert ex.prompt.count(" of ") >= hops - 1
    ex = generate("musique", "symbolic", n=1, context_tokens=300, seed=0, hops=3)[0]
    assert "What is the value of the value of the value of" in ex.prompt


def test_summhay_citations_and_id_spans():
    ex = generate("summhay", "realistic", n=1, context_tokens=600, seed=0, n_citing=3)[0]
    ids = parse_citations(ex.answer)
    assert len(ids) == 3 == len(ex.needles) == len(ex.answer_spans)
    for i, (s, e) in zip(ids, ex.answer_spans):
        assert ex.prompt[s - len("Document "):e] == f"Document [{i}]"


def test_knob_errors_are_clear():
    with pytest.raises(ValueError, match="variant"):
        generate("mdqa", "nonsense")
    with pytest.raises(ValueError, match="task"):
        generate("qa", "realistic")
    with pytest.raises(ValueError, match="position"):
        generate("mdqa", position=9, n_docs=3, context_tokens=300)
    with pytest.raises(ValueError, match="position"):
        generate("mdqa", position=1.5, context_tokens=300)
    with pytest.raises(ValueError, match="n_docs"):
        generate("mdqa", n_docs=1)
    with pytest.raises(ContextTooShortError, match="context_tokens=32"):
        generate("musique", context_tokens=32, hops=4)
    with pytest.raises(ValueError, match="documents="):
        generate("mdqa", "realistic-filler", documents=object())


def test_examples_do_not_repeat():
    for task in TASKS:
        exs = generate(task, "realistic", n=30, context_tokens=64, seed=0)
        assert len({(e.prompt, e.answer) for e in exs}) == 30
