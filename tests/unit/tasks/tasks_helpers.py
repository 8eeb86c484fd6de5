"""Shared test helpers for the task layer (no pytest fixtures here)."""

import functools
import json
import re

from rhlens.tasks import TASKS, VARIANTS, generate, vocabulary

PAIRS = [(t, v) for t in TASKS for v in VARIANTS]


@functools.lru_cache(maxsize=1)
def bpe_tokenizer():
    """A tiny BPE tokenizer (``tokenizers`` library, no downloads) trained on
    generated prompts, so its token counts differ from the word-level ones."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    texts = [" ".join(vocabulary())]
    for t, v in PAIRS:
        texts.extend(e.prompt for e in generate(t, v, n=1, context_tokens=128, seed=99))
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=1000, special_tokens=["[UNK]"]))
    return tok


def span_inside(span, outer) -> bool:
    return outer[0] <= span[0] and span[1] <= outer[1]


CITATION_TASKS = {"summhay"}  # the answer cites document ids
QA_TASKS = set(TASKS) - CITATION_TASKS  # the answer is copied from the needle
DOCUMENT_TASKS = tuple(t for t in TASKS if t not in {"kv", "niah"})  # the haystack is numbered documents
# what may precede a sentence: nothing, a "Document [i](Title: t) " header, or
# whitespace after a line break or after the end of the previous sentence
_BEFORE = re.compile(r"(?:\A|\] |\) |(?:[.!?][\"')\]]*|\n)\s+)\Z")
_PAIR = re.compile(r'"((?:[^"\\]|\\.)*)": "((?:[^"\\]|\\.)*)"')


def check_sentence(prompt: str, span, *, single: bool) -> None:
    """``prompt[span]`` is whole sentence(s); ``single``: exactly one."""
    s, e = span
    text = prompt[s:e]
    assert text == text.strip() and text, f"needle {text!r} is empty or padded"
    assert _BEFORE.search(prompt[max(0, s - 300):s]), \
        f"needle {text!r} starts mid-sentence after {prompt[max(0, s - 30):s]!r}"
    assert text[-1] in ".!?\"')]" or prompt[e:e + 1] == "\n", \
        f"needle {text!r} stops mid-sentence before {prompt[e:e + 30]!r}"
    assert e == len(prompt) or prompt[e].isspace(), f"needle {text!r} ends inside a word"
    if single:  # generated needles are one sentence each
        assert not re.search(r"[.!?] +[A-Z]", text), f"needle {text!r} holds several sentences"


def check_pair(ex) -> None:
    """The kv needle is the whole gold pair as rendered: ``"key": "value"``."""
    (s, e), = ex.needles
    m = _PAIR.fullmatch(ex.prompt[s:e])
    assert m, f"kv needle {ex.prompt[s:e]!r} is not a whole rendered pair"
    assert json.loads(f'"{m.group(1)}"') == ex.meta["key"]
    assert json.loads(f'"{m.group(2)}"') == ex.answer


def check_evidence(ex, *, generated: bool) -> None:
    """Needles are evidence (whole sentences or the kv pair, never the bare answer)
    and, for the QA tasks, hold the answer spans (asserts)."""
    ex.validate()
    texts = ex.needle_texts
    assert texts
    answers = set(ex.answer_texts) | {ex.answer, *ex.aliases}
    assert not answers & set(texts), f"a needle is the answer itself: {texts}"
    if ex.task == "kv":
        check_pair(ex)
    else:
        for span in ex.needles:
            check_sentence(ex.prompt, span, single=generated)
    if ex.task in QA_TASKS:
        # the copied answer lies in the (last) needle: for musique the final hop's sentence
        for a in ex.answer_spans:
            assert span_inside(a, ex.needles[-1]), (ex.prompt[a[0]:a[1]], texts)
    if ex.task == "musique":
        # every earlier hop's sentence states that hop's answer (the last: the answer span)
        for hop, text in zip(ex.meta["hop_answers"][:-1], texts, strict=False):
            assert hop.casefold() in " ".join(text.split()).casefold(), (hop, text)
        assert len(texts) == len(ex.meta["hop_answers"])
