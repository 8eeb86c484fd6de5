"""Word-level Hugging Face fast tokenizers for rhlens's tiny models.

The tokenizer splits text with :data:`rhlens.tasks.vocab.WORD_PATTERN` (words, single
punctuation characters, newlines), so every token the task generators write is one vocabulary
entry. It is a ``PreTrainedTokenizerFast``: ``model.to_tokens`` works and
``return_offsets_mapping=True`` gives character offsets for needle spans.

>>> tok = word_level_tokenizer(["The sky is blue.", "Answer: blue"])
>>> tok.convert_ids_to_tokens(tok("The sky is blue.")["input_ids"])
['<bos>', 'The', 'sky', 'is', 'blue', '.']
>>> tok("sky is", return_offsets_mapping=True)["offset_mapping"]
[(0, 0), (0, 3), (4, 6)]
"""

import re
from typing import Iterable

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
    """The word-level tokenizer over :func:`rhlens.tasks.vocabulary` (built once, then cached)."""
    global _DEFAULT
    if _DEFAULT is None:
        from rhlens.tasks import vocabulary

        _DEFAULT = word_level_tokenizer(vocabulary())
    return _DEFAULT
