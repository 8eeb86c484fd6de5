"""Real tokenizers of the families rhlens must handle, built in memory with the ``tokenizers``
library (no download): every clone has them.

- :func:`byte_fallback_tokenizer`: SentencePiece-style BPE as Llama-2, Mistral and stories260K
  (``▁`` word boundaries through a Metaspace pre-tokenizer, byte fallback to ``<0x00>``..``<0xFF>``,
  ``<unk>`` 0, ``<s>`` 1, ``</s>`` 2, bytes from id 3 so ``<0x0A>`` is id 13). A newline is not in
  the vocabulary: ``"\\n"`` encodes to ``['▁', '<0x0A>']``.
- :func:`byte_level_tokenizer`: GPT-2-style byte-level BPE (``Ġ`` for a space, ``Ċ`` for a
  newline), EOS ``<|endoftext|>``.

>>> tok = byte_fallback_tokenizer()
>>> tok.convert_ids_to_tokens(tok("\\n", add_special_tokens=False)["input_ids"])
['▁', '<0x0A>']
>>> tok.convert_tokens_to_ids("<0x0A>"), tok.decode(tok("Lily went home.\\n")["input_ids"], skip_special_tokens=True)
(13, 'Lily went home.\\n')
"""

import json
from functools import lru_cache

CORPUS = [
    "Once upon a time there was a little girl named Lily. She had a big red ball and a small blue car.",
    "Tom and his dog Max liked to play in the garden. Every day Tom threw a stick and Max ran after it.",
    "There was a cat named Tim. Tim loved to eat fish. One day Tim saw a big bird in the tree.",
    "The key is red. The sky is blue. The sun is warm. The number is 4271. Question: what is the key? Answer:",
    "Ann lives in Rome. Bob lives in Paris. Where does Ann live? She lives in Rome with her mother.",
]


def _wrap(saved: str, **special):
    """A fresh ``PreTrainedTokenizerFast`` (callers may change its padding side) from a JSON string."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(saved), **special)


@lru_cache(maxsize=None)
def _byte_fallback(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 256, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    tok.train_from_iterator(CORPUS, trainer=trainer)  # no newline in the corpus: it falls back to <0x0A>
    # The byte tokens are ordinary vocabulary (as in Llama's tokenizer, not special tokens), ids 3..258.
    data = json.loads(tok.to_str())
    learned = sorted(data["model"]["vocab"].items(), key=lambda kv: kv[1])
    order = [t for t, _ in learned[:3]] + [f"<0x{b:02X}>" for b in range(256)] + [t for t, _ in learned[3:]]
    data["model"]["vocab"] = {t: i for i, t in enumerate(order)}
    data["added_tokens"] = [dict(a, id=order.index(a["content"])) for a in data["added_tokens"]]
    return json.dumps(data)


def byte_fallback_tokenizer(vocab_size: int = 600):
    """A byte-fallback SentencePiece-style fast tokenizer (see the module docstring)."""
    return _wrap(_byte_fallback(vocab_size), bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<unk>")


@lru_cache(maxsize=None)
def _byte_level(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([line + "\n" + line + " \n\n" for line in CORPUS], trainer=trainer)
    return tok.to_str()


def byte_level_tokenizer(vocab_size: int = 600):
    """A GPT-2-style byte-level BPE fast tokenizer (see the module docstring)."""
    return _wrap(_byte_level(vocab_size), bos_token="<|endoftext|>", eos_token="<|endoftext|>")


def stories260k(realdata):
    """``(folder, tokenizer)`` of ``realdata/models/stories260K``; skips the test when absent."""
    import pytest
    from transformers import AutoTokenizer

    path = realdata / "models" / "stories260K"
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path, AutoTokenizer.from_pretrained(str(path))
