"""retrieval_scores against an independent Hugging Face reference of Wu et al.'s rule
(:mod:`tests.references.hf_wu`: ``LlamaForCausalLM`` with eager attention, its own greedy loop,
stop rule, span mapping and ROUGE gate, no rhlens code).

The model is a tiny random ``LlamaForCausalLM`` over a byte-fallback SentencePiece tokenizer built
here (``"\\n"`` is ``['▁', '<0x0A>']``), saved to a folder and loaded into rhlens with
``load_hf_checkpoint``. With small weights and tied embeddings it repeats its last input token; its
query and key weights are scaled up so attention is peaked (no near-ties between the two
implementations' top-1). Prompts end with a word of the answer span, so repeated tokens hit; one
prompt ends with a newline, so decoding stops at step 0 on ``<0x0A>``.

Behind the realdata marker, the same comparison runs on stories260K with 20 name-copy prompts.
"""

import dataclasses

import pytest
import torch

from rhlens.models import load_hf_checkpoint
from rhlens.scoring import retrieval_scores
from rhlens.tasks.example import Example
from tests.references.hf_wu import hf_wu_scores
from tests.references.tokenizers import CORPUS, byte_fallback_tokenizer, stories260k

STEPS = 10


def _example(line: str, k: int, n_words: int = 3, *, tail: str | None = None, **kw) -> Example:
    """Answer span: words ``k .. k + n_words`` of ``line``; the prompt ends with word ``k``."""
    words = line.split()
    answer = " ".join(words[k : k + n_words])
    start = line.index(answer)
    prompt = f"{line}\nQuestion: what comes next?\nAnswer: {words[k] if tail is None else tail}"
    return Example(prompt=prompt, answer=kw.pop("answer", answer), needles=((0, len(line)),), task="niah",
                   variant="real", answer_spans=((start, start + len(answer)),), **kw)


def examples() -> list[Example]:
    out = [_example(line, len(line.split()) // 2) for line in CORPUS]
    out.append(_example(CORPUS[0], 3, tail="\n"))  # ends with <0x0A>: the model stops at step 0
    two = CORPUS[0]  # two copy sources, one per piece of the answer
    a, b = two.index("Lily"), two.index("red ball")
    out.append(Example(prompt=two + "\nAnswer: red", answer="Lily red ball", needles=((0, len(two)),), task="niah",
                       variant="real", answer_spans=((a, a + 4), (b, b + 8))))
    return out


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = byte_fallback_tokenizer()
    torch.manual_seed(3)  # a seed where 5 of the 7 examples hit
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    hf = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for layer in hf.model.layers:
            layer.self_attn.q_proj.weight.mul_(10)
            layer.self_attn.k_proj.weight.mul_(10)
    folder = tmp_path_factory.mktemp("tiny_sp_llama")
    hf.save_pretrained(folder)
    tok.save_pretrained(folder)
    hf = LlamaForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    return hf, tok, load_hf_checkpoint(folder)


def assert_equal(got, ref, atol=1e-6):
    assert got.trials.responses == ref.trials.responses
    assert got.trials.hits.equal(ref.trials.hits)
    assert got.trials.answer_tokens.equal(ref.trials.answer_tokens)
    assert got.counted.equal(ref.counted)
    torch.testing.assert_close(got.trials.rouge, ref.trials.rouge)
    assert (got.scores - ref.scores).abs().max() <= atol


@pytest.mark.parametrize("method", ["decode", "forced"])
def test_equals_hf_reference(pair, method):
    hf, tok, model = pair
    exs = examples()
    ref = hf_wu_scores(hf, tok, exs, method=method, max_new_tokens=STEPS, rouge_gate=None)
    got = retrieval_scores(model, exs, method=method, max_new_tokens=STEPS, rouge_gate=None, batch_size=3,
                           chunk_size=8, progress=False)
    assert ref.trials.hits.sum() > 0 and (ref.trials.hits.sum(dim=(1, 2)) > 0).sum() >= 4  # not vacuous
    assert ref.trials.answer_tokens[-1] == 3  # both pieces count: '▁Lily', then '▁red', '▁ball'
    if method == "decode":
        assert ref.trials.responses[-2] == ""  # stopped at <0x0A> at step 0
    assert_equal(got, ref)


def test_gate_equals_hf_reference(pair):
    """The default gate: the answer (or an alias) must be in the response. The model repeats the
    prompt's last word, so an answer equal to that word passes, an unrelated one fails, and an
    alias equal to it passes."""
    hf, tok, model = pair
    base = examples()[:4]
    word = [ex.prompt.split()[-1] for ex in base]

    def first_word(ex, w, **kw):  # the answer span shrinks to the answer's first word (it must hold the answer)
        s = ex.answer_spans[0][0]
        return dataclasses.replace(ex, answer_spans=((s, s + len(w)),), **kw)

    exs = [first_word(base[0], word[0], answer=word[0]),
           first_word(base[1], word[1], answer=f"{word[1]} zebra zebra"),  # recall at most 1/3
           first_word(base[2], word[2], answer="zebra", aliases=(word[2],)),
           base[3]]
    ref = hf_wu_scores(hf, tok, exs, max_new_tokens=STEPS)
    got = retrieval_scores(model, exs, max_new_tokens=STEPS, progress=False)
    assert ref.counted.tolist()[:3] == [True, False, True]
    assert_equal(got, ref)


NAMES = ["Lily", "Tom", "Max", "Sue", "Ben", "Anna", "Tim", "Mia", "Sam", "Lucy"]
TEMPLATES = [
    "Once upon a time, there was a boy named {n}. He had a big red ball.\nOne day,",
    "{n} and her mom went to the park. They saw a big tree.\n{n} said,",
]


def name_copy_examples() -> list[Example]:
    """20 stories260K prompts whose continuation copies a name from the context (Wu's setting:
    the name is the needle and the answer span)."""
    out = []
    for template in TEMPLATES:
        for name in NAMES:
            prompt = template.format(n=name)
            s = prompt.index(name)
            out.append(Example(prompt=prompt, answer=name, needles=((s, s + len(name)),), task="niah",
                               variant="real", answer_spans=((s, s + len(name)),)))
    return out


@pytest.mark.realdata
def test_stories260k_equals_hf_reference(realdata):
    from transformers import LlamaForCausalLM

    path, tok = stories260k(realdata)
    hf = LlamaForCausalLM.from_pretrained(str(path), attn_implementation="eager").eval()
    exs = name_copy_examples()
    ref = hf_wu_scores(hf, tok, exs, max_new_tokens=50)
    got = retrieval_scores(load_hf_checkpoint(path), exs, max_new_tokens=50, progress=False)
    assert ref.counted.sum() >= 10 and ref.trials.hits.sum() > 0
    assert_equal(got, ref)
