"""A perfect response passes the default gate, and a head that attends to the copied tokens scores
1.0, on every task x variant generator and every loader (issue 10 item 2, issue 21 item 3).

The "perfect copier" is head L0H0 of a random model whose attention is overwritten, at each
teacher-forced answer row, to put all weight on an answer-span position holding the gold token
that row predicts (positions found with the independent :mod:`tests.references.wu_rule`). Its
per-example score is 1.0 when the context spells the answer with the same tokens as the answer
itself, up to a leading word-boundary marker.
"""

from pathlib import Path

import pytest

from rhlens.adapter import hook_name, hooks
from rhlens.models import default_tokenizer, load_hf_checkpoint, tiny_llama
from rhlens.scoring import retrieval_scores
from rhlens.scoring.answer_spans import encode_for_scoring
from rhlens.scoring.rouge_gate import gate_counted
from rhlens.tasks import (TASKS, VARIANTS, generate, load_lost_in_the_middle_kv, load_lost_in_the_middle_qa,
                          load_musique, load_summhay)
from rhlens.tasks.example import Example
from tests.references import wu_rule
from tests.references.tokenizers import byte_fallback_tokenizer

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "tasks"


def copier_score(model, example) -> float:
    """Score of head L0H0 made to copy perfectly (see the module docstring), method="forced"."""
    tok = model.tokenizer
    enc = wu_rule.encode(tok, example, forced=True)
    seq = enc.prompt + enc.answer
    # the same text up to a leading word boundary ("▁pe" copies "pe"): forced mode's rule
    text = [t[1:] if t and len(t) > 1 and t[0] in "▁Ġ " else t for t in tok.convert_ids_to_tokens(seq)]

    def attend_to_copy(pattern, hook):
        q, k = pattern.shape[2], pattern.shape[3]  # rows are the last q of the k positions so far
        for r in range(q):
            target = k - q + r + 1
            source = next((i for i in enc.copy if target < len(seq) and text[i] == text[target]), None)
            if source is not None:
                pattern[0, 0, r] = 0
                pattern[0, 0, r, source] = 1
        return pattern

    with hooks(model, [(hook_name("pattern", 0), attend_to_copy)]):
        hs = retrieval_scores(model, [example], method="forced", rouge_gate=None, batch_size=1, chunk_size=None,
                              progress=False)
    return float(hs.per_example[0, 0, 0])


def perfect_responses_pass(model, examples) -> bool:
    """A model that emits exactly the gold completion's tokens decodes them back to text (what
    decoding would return); that text must pass the default gate, and an empty response must not
    (so the check can fail)."""
    items = encode_for_scoring(model, examples, method="forced", max_new_tokens=1)
    tok = model.tokenizer
    decoded = [tok.decode(it.enc.answer_tokens, skip_special_tokens=True).strip() for it in items]
    _, counted = gate_counted(items, decoded, 0.5)  # the default gate
    _, empty = gate_counted(items, [""] * len(items), 0.5)
    assert not empty.any()
    return bool(counted.all())


@pytest.fixture(scope="module")
def word_model():
    return tiny_llama(tokenizer=default_tokenizer(), n_ctx=512, seed=0)


@pytest.mark.parametrize("task", TASKS)
def test_generators(word_model, task):
    for variant in VARIANTS:
        examples = generate(task, variant, n=2, context_tokens=256, tokenizer=word_model.tokenizer, seed=1)
        assert perfect_responses_pass(word_model, examples), (task, variant)
        scores = [copier_score(word_model, ex) for ex in examples]
        assert min(scores) == 1.0, (task, variant, scores)


@pytest.fixture(scope="module")
def sp_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sp_tok")
    byte_fallback_tokenizer().save_pretrained(folder)
    from transformers import AutoTokenizer

    return tiny_llama(tokenizer=AutoTokenizer.from_pretrained(folder), n_ctx=4096, seed=0)


LOADERS = {
    "lim_qa": (load_lost_in_the_middle_qa, "lim_qa.jsonl", "lost_in_the_middle/nq-open-oracle.first200.jsonl", {}),
    "lim_kv": (load_lost_in_the_middle_kv, "lim_kv.jsonl", "lost_in_the_middle/kv-retrieval-75_keys.jsonl.gz", {"n_pairs": 10}),
    "musique": (load_musique, "musique.jsonl", "musique/musique_ans_train_sample100.jsonl", {"n_docs": 4}),
    "summhay": (load_summhay, "summhay.json", "summhay/topic_news1.json", {"n_docs": 2}),
}


def check_loaded(model, examples):
    """Every perfect response passes the gate; where the context spells the answer as the answer
    does (the loaders match case- and space-insensitively), the copier scores 1.0 (forced mode
    compares tokens up to a leading word boundary: the gold "▁pe" hits on a quoted "pe")."""
    examples = [ex for ex in examples if len(model.tokenizer(ex.prompt)["input_ids"]) < model.cfg.n_ctx - 64]
    assert examples
    assert perfect_responses_pass(model, examples)
    same = [ex for ex in examples if " ".join(ex.answer_texts) in (ex.answer, *ex.aliases) or ex.task == "summhay"]
    assert same
    scores = [copier_score(model, ex) for ex in same]
    assert min(scores) == 1.0, scores


@pytest.mark.parametrize("name", LOADERS)
def test_fixture_loaders(sp_model, name):
    load, fixture, _, _ = LOADERS[name]
    check_loaded(sp_model, list(load(FIX / fixture)))


@pytest.mark.realdata
@pytest.mark.filterwarnings("ignore:.*skipped because")
@pytest.mark.parametrize("name", ["lim_qa", "lim_kv", "musique"])  # real SummHay prompts keep every cited
def test_real_loaders(sp_model, realdata, name):  # document: 18K+ tokens, beyond this check's model
    load, _, real, kw = LOADERS[name]
    check_loaded(sp_model, list(load(realdata / real, errors="skip", **kw))[:8])



@pytest.mark.realdata
def test_word_boundary_copies_score_one_on_stories260k(realdata):
    """kv values sit inside JSON quotes ('"pe4-...'), the gold completion starts a word ('▁pe'):
    with only ids compared the copier missed the first token (0.909 for pe4-fe4-si7)."""
    from tests.references.tokenizers import stories260k

    path, tok = stories260k(realdata)
    model = load_hf_checkpoint(path)
    examples = generate("kv", "symbolic", n=4, context_tokens=200, tokenizer=tok, seed=2)
    prompt = 'Data: {"key1": "pe4-fe4-si7", "key2": "ta3-mo8-re2"}\nQuestion: what is the value of key1?\nAnswer:'
    s = prompt.index("pe4-fe4-si7")
    examples.append(Example(prompt=prompt, answer="pe4-fe4-si7", needles=((s - 8, s + 12),), task="kv",
                            variant="symbolic", answer_spans=((s, s + 11),)))
    gold = [tok.convert_ids_to_tokens(tok(" " + ex.answer, add_special_tokens=False)["input_ids"])[:2] for ex in examples]
    assert all(any(t.startswith("\u2581") and len(t) > 1 for t in g) for g in gold[-1:])  # the case at stake
    assert [copier_score(model, ex) for ex in examples] == [1.0] * len(examples)  # ids only: 0.909 on 4 of 5


@pytest.mark.realdata
@pytest.mark.slow
def test_lost_in_the_middle_uuid_copier_scores_one_on_stories260k(realdata):
    """Lost-in-the-middle kv values are UUIDs in JSON quotes: the context holds 'b', 'b', '3' ... and
    the gold completion '▁b', 'b', '3' ..., so with ids alone the copier missed the first token
    (35 of 36: 0.972). Forced mode scores it 1.0 (issue 21 item 3)."""
    from tests.references.tokenizers import stories260k

    path, tok = stories260k(realdata)
    model = load_hf_checkpoint(path)
    kv = realdata / "lost_in_the_middle" / "kv-retrieval-75_keys.jsonl.gz"
    examples = list(load_lost_in_the_middle_kv(kv, n_pairs=3))[:4]
    assert all(len(tok(ex.prompt)["input_ids"]) + 40 < model.cfg.n_ctx for ex in examples)
    boundary = 0  # examples whose first gold token is the context's first answer token plus '▁' (the case at stake)
    for ex in examples:
        enc = wu_rule.encode(tok, ex, forced=True)
        gold, context = tok.convert_ids_to_tokens([enc.answer[0], enc.prompt[enc.copy[0]]])
        boundary += gold == "\u2581" + context
    assert boundary >= 1
    assert [copier_score(model, ex) for ex in examples] == [1.0] * len(examples)
