"""``retrieval_scores(rule="wu-literal")`` against a literal reading of Wu et al.'s
``retrieval_head_detection.py`` (:mod:`tests.references.wu_literal`: Hugging Face eager attention,
its own window search, stop rule and gate, no rhlens code), and the three places where it differs
from the documented rule (issue 21 item 2): the stop token, the needle window and the gate.

The model is the tiny random ``LlamaForCausalLM`` of :mod:`test_scoring_hf_reference` (it repeats
its last input token) over a byte-fallback SentencePiece tokenizer.
"""

import dataclasses
import random

import pytest
import torch

from rhlens.models import load_hf_checkpoint, word_level_tokenizer, tiny_llama
from rhlens.scoring import retrieval_scores
from rhlens.scoring.wu_literal import find_needle_window
from rhlens.tasks.example import Example
from tests.references import wu_literal as ref
from tests.references.hf_wu import hf_wu_scores
from tests.unit.scoring.test_scoring_hf_reference import STEPS, examples, pair  # noqa: F401  (pair: a fixture)

needs_rouge_score = pytest.mark.skipif(not ref.HAVE_ROUGE_SCORE, reason="rouge_score is not installed (pip install 'rhlens[wu]')")


def assert_same(got, want):
    assert got.trials.responses == want.trials.responses
    assert got.trials.hits.equal(want.trials.hits)
    assert got.trials.answer_tokens.equal(want.trials.answer_tokens)
    assert got.counted.equal(want.counted)
    assert (got.scores - want.scores).abs().max() <= 1e-6


def literal(model, exs, **kw):
    return retrieval_scores(model, exs, rule="wu-literal", max_new_tokens=STEPS, batch_size=3, chunk_size=8,
                            progress=False, **kw)


def kv_example() -> Example:
    """The value sits in JSON quotes: alone it tokenizes with a word boundary ('▁...'), so Wu's
    window finds no span and nothing can hit; rhlens's character span does."""
    prompt = 'Data: {"key": "Lily red ball"}\nQuestion: what is the value of key?\nAnswer: Lily'
    s = prompt.index("Lily red ball")
    return Example(prompt=prompt, answer="Lily red ball", needles=((s - 1, s + 14),), task="kv", variant="symbolic",
                   answer_spans=((s, s + 13),))


def test_equals_literal_reference(pair):  # noqa: F811
    hf, tok, model = pair
    exs = [*examples(), kv_example()]
    want = ref.wu_literal_scores(hf, tok, exs, decode_len=STEPS, rouge_gate=None)
    got = literal(model, exs, rouge_gate=None)
    assert want.hits.sum() > 0 and (want.hits.sum(dim=(1, 2)) > 0).sum() >= 4  # not vacuous
    assert want.meta["spans"][-1] == (-1, -1) and want.hits[-1].sum() == 0  # the quoted value: no window
    assert_same(got, want)
    # rhlens's rule scores the quoted value (its span is the characters) and weighs hits per span token
    documented = retrieval_scores(model, exs, max_new_tokens=STEPS, rouge_gate=None, progress=False)
    assert documented.trials.hits[-1].sum() > 0
    assert not documented.trials.answer_tokens.equal(got.trials.answer_tokens)  # the two-span example: 3 vs 3 + 1


def test_find_needle_window_equals_wus_loop():
    rng = random.Random(0)
    for _ in range(2000):
        prompt = [rng.randrange(8) for _ in range(rng.randrange(0, 30))]
        needle = [rng.randrange(8) for _ in range(rng.randrange(1, 12))]
        assert find_needle_window(prompt, needle) == ref.find_needle_idx(prompt, needle), (prompt, needle)
    assert find_needle_window([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], list(range(1, 11))) == (0, 10)
    assert find_needle_window([0, 2, 3, 4, 5, 6, 7, 8, 9, 10], list(range(1, 11))) == (-1, -1)  # 90% is not over 90%
    assert find_needle_window([9, 1, 2], [1, 2, 3]) == (-1, -1) and find_needle_window([9, 1, 2, 3], [1, 2, 3]) == (1, 4)
    with pytest.raises(ValueError, match="no tokens"):
        find_needle_window([1], [])


def relabelled(models, tmp_path, word: str):
    """The same model with its tokenizer's EOS moved onto ``word`` (an exact relabelling: the
    weights are untouched, so every logit is the same)."""
    from transformers import AutoTokenizer

    hf, tok, _ = models
    folder = tmp_path / "relabelled"
    hf.save_pretrained(folder)
    tok.save_pretrained(folder)
    tok2 = AutoTokenizer.from_pretrained(str(folder), eos_token=word)
    tok2.save_pretrained(folder)
    return tok2, load_hf_checkpoint(folder)


def test_stops_only_at_the_line_feed(pair, tmp_path):  # noqa: F811
    """Wu's loop never stops at EOS: with EOS on the word the model repeats ('▁She'), rhlens's rule
    stops at step 0 and the literal rule decodes (and scores) every step; each equals its reference."""
    hf = pair[0]
    tok2, model = relabelled(pair, tmp_path, "\u2581She")
    exs = [ex for ex in examples() if ex.prompt.endswith(" She")]
    assert len(exs) == 1
    want_doc = hf_wu_scores(hf, tok2, exs, max_new_tokens=STEPS, rouge_gate=None)
    want_lit = ref.wu_literal_scores(hf, tok2, exs, decode_len=STEPS, rouge_gate=None)
    doc = retrieval_scores(model, exs, max_new_tokens=STEPS, rouge_gate=None, progress=False)
    lit = literal(model, exs, rouge_gate=None)
    assert doc.trials.hits.equal(want_doc.trials.hits) and doc.trials.responses == want_doc.trials.responses
    assert_same(lit, want_lit)
    assert doc.trials.hits.sum() < lit.trials.hits.sum()  # 1 step scored against 10


def test_line_feed_required():
    model = tiny_llama(tokenizer=word_level_tokenizer(["the key is red"]), seed=0)
    ex = Example(prompt="the key is red", answer="red", needles=((11, 14),), task="kv", variant="symbolic")
    with pytest.raises(ValueError, match="line feed"):
        retrieval_scores(model, [ex], rule="wu-literal", rouge_gate=None, progress=False)


@pytest.mark.parametrize("kw, match", [({"rule": "wu"}, "rule must be one of"),
                                       ({"rule": "wu-literal", "method": "forced"}, "method='decode'"),
                                       ({"rule": "wu-literal", "gate": "exact"}, "gate='rouge'")])
def test_bad_rule_options(pair, kw, match):  # noqa: F811
    with pytest.raises(ValueError, match=match):
        retrieval_scores(pair[2], examples()[:1], progress=False, **kw)


@needs_rouge_score
def test_gate_equals_literal_reference(pair):  # noqa: F811
    """The gate is rouge_score's stemmed ROUGE-1 recall of the answer alone (no aliases)."""
    hf, tok, model = pair
    base = examples()[:4]
    word = [ex.prompt.split()[-1] for ex in base]
    exs = [dataclasses.replace(base[0], answer=word[0]),
           dataclasses.replace(base[1], answer=f"{word[1]} zebra zebra"),
           dataclasses.replace(base[2], answer="zebra", aliases=(word[2],)),  # passes rhlens's gate only
           base[3]]
    want = ref.wu_literal_scores(hf, tok, exs, decode_len=STEPS)
    got = literal(model, exs)
    assert want.counted.tolist()[:3] == [True, False, False]
    assert_same(got, want)
    torch.testing.assert_close(got.trials.rouge, want.rouge)


@needs_rouge_score
def test_gate_cases_differ_from_rhlens():
    """runs -> running passes Wu's stemmed gate and fails rhlens's; 東京 fails Wu's and passes rhlens's."""
    from rhlens.scoring.wu_literal import rouge_score_recall
    from rhlens.tasks.metrics import rouge1_recall

    assert rouge_score_recall("running", "he runs") == 1.0 and rouge1_recall("running", "he runs") == 0.0
    assert rouge_score_recall("東京", "東京") == 0.0 and rouge1_recall("東京", "東京") == 1.0
    assert rouge_score_recall("running", "he runs") == ref.rouge1_recall("running", "he runs")


@pytest.mark.realdata
@pytest.mark.slow
def test_stories260k_equals_literal_reference(realdata):
    """20 name-copy prompts on stories260K, Wu's gate included when rouge_score is installed."""
    from transformers import LlamaForCausalLM

    from tests.references.tokenizers import stories260k
    from tests.unit.scoring.test_scoring_hf_reference import name_copy_examples

    path, tok = stories260k(realdata)
    hf = LlamaForCausalLM.from_pretrained(str(path), attn_implementation="eager").eval()
    exs = name_copy_examples()
    gate = 0.5 if ref.HAVE_ROUGE_SCORE else None
    want = ref.wu_literal_scores(hf, tok, exs, rouge_gate=gate)
    got = retrieval_scores(load_hf_checkpoint(path), exs, rule="wu-literal", rouge_gate=gate, progress=False)
    assert want.hits.sum() > 0 and want.counted.sum() >= 10
    assert_same(got, want)


def test_line_feed_token_of_each_tokenizer_family():
    """Wu's stop token is the one-line-feed token: '<0x0A>' (byte fallback), 'Ċ' (byte level), never
    a longer newline token such as 'ĊĊ' (which rhlens's default stops also take)."""
    from rhlens.stopping import default_stop_ids, line_feed_ids
    from tests.references.tokenizers import byte_fallback_tokenizer, byte_level_tokenizer

    sp, bl = byte_fallback_tokenizer(), byte_level_tokenizer()
    assert sp.convert_ids_to_tokens(sorted(line_feed_ids(sp))) == ["<0x0A>"]
    assert bl.convert_ids_to_tokens(sorted(line_feed_ids(bl))) == ["\u010a"]
    longer = {t for t in bl.get_vocab() if t.strip("\u010a\u0120") == "" and t.count("\u010a") >= 1 and t != "\u010a"}
    assert longer and {bl.convert_tokens_to_ids(t) for t in longer} <= default_stop_ids(bl) - line_feed_ids(bl)
