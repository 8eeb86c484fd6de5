"""Word-level Hugging Face fast tokenizers for rhlens's tiny models.

The tokenizer splits text with :data:`rhlens.tasks.vocab.WORD_PATTERN` (words, single
punctuation characters, newlines), so every token the task generators write is one vocabulary
entry. It is a ``PreTrainedTokenizerFast``: ``model.to_tokens`` works and
``return_offsets_mapping=True`` gives character offsets for needle spans.
"""

import re
import warnings
from typing import Iterable, Sequence

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>"}


def _word_pattern() -> str:
    """The task layer's word pattern, so tokenizer and generators split text identically."""
    from rhlens.tasks.vocab import WORD_PATTERN

    return WORD_PATTERN


def word_level_tokenizer(texts_or_vocab: Iterable[str], *, model_max_length: int = 1_000_000) -> PreTrainedTokenizerFast:
    """A word-level fast tokenizer covering every token in ``texts_or_vocab``.

    Items may be whole texts or single tokens: each is split with the word pattern and every
    piece becomes a vocabulary entry. Ids: ``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2, ``<unk>`` 3,
    then tokens in sorted order (deterministic for the same input set).

    >>> tok = word_level_tokenizer(["The sky is blue.", "Answer: blue"])
    >>> tok.convert_ids_to_tokens(tok("The sky is blue.")["input_ids"])
    ['<bos>', 'The', 'sky', 'is', 'blue', '.']
    >>> tok("sky is", return_offsets_mapping=True)["offset_mapping"]
    [(0, 0), (0, 3), (4, 6)]
    >>> tok.tokenize("The sea")  # a word not in the texts
    ['The', '<unk>']
    """
    pattern = re.compile(_word_pattern())
    words: set[str] = set()
    for text in texts_or_vocab:
        words.update(pattern.findall(text))
    specials = list(SPECIAL_TOKENS.values())
    vocab = {tok: i for i, tok in enumerate(specials)}
    for word in sorted(words - set(specials)):
        vocab[word] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(_word_pattern()), behavior="removed", invert=True)
    core.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    bos = SPECIAL_TOKENS["bos_token"]
    core.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, vocab[bos])]
    )
    # Like Llama's tokenizers it adds BOS itself (offset (0, 0)); TransformerLens then does not.
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        model_max_length=model_max_length,
        padding_side="left",
        add_bos_token=True,
        name_or_path="rhlens-word-level",
        **SPECIAL_TOKENS,
    )


_DEFAULT = None


def default_tokenizer() -> PreTrainedTokenizerFast:
    """The word-level tokenizer over :func:`rhlens.tasks.vocabulary` (built once, then cached).

    It knows every word the task generators write, so generated examples never hit ``<unk>``.

    >>> from rhlens.tasks import generate
    >>> tok = default_tokenizer()
    >>> tok is default_tokenizer(), tok.padding_side
    (True, 'left')
    >>> ex = generate("kv", "realistic", n=1, context_tokens=64)[0]
    >>> tok.unk_token_id in tok(ex.prompt + ex.completion)["input_ids"]
    False
    """
    global _DEFAULT
    if _DEFAULT is None:
        from rhlens.tasks import vocabulary

        _DEFAULT = word_level_tokenizer(vocabulary())
    return _DEFAULT


# ---- out-of-vocabulary words -----------------------------------------------------------------
UNKNOWN_WARN_RATE = 0.25
"""Warn when more than this share of a prompt's or a needle's tokens are the unknown token."""


class UnknownTokenWarning(UserWarning):
    """Much of a prompt or needle is the tokenizer's unknown token (out-of-vocabulary words)."""


def _ids(tokenizer, text_or_ids: "str | Sequence[int]") -> list[int]:
    if isinstance(text_or_ids, str):
        return list(tokenizer(text_or_ids, add_special_tokens=False)["input_ids"])
    return [int(t) for t in text_or_ids]


def unknown_rate(tokenizer, text_or_ids: "str | Sequence[int]") -> float:
    """Share of ``text_or_ids``'s tokens that are ``tokenizer.unk_token_id`` (special tokens such as
    BOS are not counted; 0.0 for a tokenizer without an unknown token or no tokens).

    >>> tok = word_level_tokenizer(["the sky is blue"])
    >>> unknown_rate(tok, "the sea is green"), unknown_rate(tok, "the sky is blue")
    (0.5, 0.0)
    """
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return 0.0
    special = set(getattr(tokenizer, "all_special_ids", ())) - {unk}
    ids = [t for t in _ids(tokenizer, text_or_ids) if t not in special]
    return sum(t == unk for t in ids) / len(ids) if ids else 0.0


def check_unknown_tokens(
    tokenizer,
    prompt_ids: "Sequence[int]",
    needle_spans: "Sequence[tuple[int, int]]" = (),
    *,
    where: str = "text",
    warn_above: float = UNKNOWN_WARN_RATE,
    answer_spans: "Sequence[tuple[int, int]]" = (),
) -> None:
    """Refuse a needle made only of the unknown token; warn (with the rate) when the prompt or a
    needle is more than ``warn_above`` unknown, and when an answer span (the text a retrieval head
    copies, token spans into ``prompt_ids``) is only the unknown token: copying ``<unk>`` from
    anywhere would then count as copying the answer.

    A word-level tokenizer turns every word it was not built over into ``<unk>``: a head that
    attends to an ``<unk>`` needle and emits ``<unk>`` would count as copying it.

    Args:
        prompt_ids: the prompt's token ids (BOS allowed); ``needle_spans`` index into them.
        where: names the record in messages, e.g. ``"Example 3 (task 'mdqa')"``.

    Raises:
        ValueError: a needle whose tokens are all the unknown token.

    >>> tok = word_level_tokenizer(["Ann lives in Rome"])
    >>> ids = tok("Ann lives in Oslo")["input_ids"]
    >>> check_unknown_tokens(tok, ids, [(4, 5)], where="Example 0")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: Example 0: needle 0 (tokens 4:5) is only the unknown token '<unk>'...
    """
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return
    name = getattr(tokenizer, "unk_token", "<unk>")
    for k, (start, end) in enumerate(needle_spans):
        needle = list(prompt_ids[start:end])
        if needle and all(t == unk for t in needle):
            raise ValueError(
                f"{where}: needle {k} (tokens {start}:{end}) is only the unknown token {name!r}: the tokenizer "
                "knows none of its words, so no head can be scored on copying it. Build the tokenizer over the "
                "examples' text (rhlens.word_level_tokenizer(texts)) or use the model's own tokenizer."
            )
        rate = unknown_rate(tokenizer, needle)
        if rate > warn_above:
            warnings.warn(
                f"{where}: needle {k} is {rate:.0%} unknown tokens ({name!r}); retrieval scores on it are unreliable. "
                "Build the tokenizer over the examples' text.",
                UnknownTokenWarning,
                stacklevel=2,
            )
    for k, (start, end) in enumerate(answer_spans):
        answer = list(prompt_ids[start:end])
        if answer and all(t == unk for t in answer):
            warnings.warn(
                f"{where}: answer span {k} (tokens {start}:{end}) is only the unknown token {name!r}: a head "
                "copying any unknown word counts as copying the answer, so retrieval scores on it are unreliable. "
                "Build the tokenizer over the examples' text.",
                UnknownTokenWarning,
                stacklevel=2,
            )
    rate = unknown_rate(tokenizer, prompt_ids)
    if rate > warn_above:
        warnings.warn(
            f"{where}: the prompt is {rate:.0%} unknown tokens ({name!r}): the model sees only part of it. "
            "Build the tokenizer over the examples' text.",
            UnknownTokenWarning,
            stacklevel=2,
        )
