"""Which token ids end a greedy continuation: EOS and every newline token, for any tokenizer family.

Wu et al. stop decoding at EOS or at Llama's newline token ``<0x0A>``. A newline is spelled
differently in each tokenizer family, and ``tokenizer("\\n")`` does not always give it as one
token (byte-fallback SentencePiece tokenizers such as Llama-2, Mistral or stories260K encode
``"\\n"`` as ``['▁', '<0x0A>']``), so :func:`default_stop_ids` looks in the vocabulary:

- byte-fallback SentencePiece: the byte token ``<0x0A>`` (Wu et al.'s stop token);
- GPT-2-style byte-level BPE (GPT-2, Llama-3, Qwen): ``Ċ`` (``"\\n"``), ``ĊĊ``, ``ĠĊ`` ...;
- tokenizers with literal whitespace tokens (word-level, some SentencePiece models): ``"\\n"``,
  ``"\\n\\n"``, ``"▁\\n"`` ...

A token is a newline token when its text is whitespace only and contains a line feed. EOS is the
tokenizer's ``eos_token_id`` plus, when given, every id in the model's generation config
(``eos_token_id`` may be an int or a list there: Llama-3-Instruct lists ``<|eot_id|>``).

>>> from rhlens.models import word_level_tokenizer
>>> tok = word_level_tokenizer(["a b", "\\n"])
>>> sorted(tok.convert_ids_to_tokens(sorted(default_stop_ids(tok))))
['\\n', '<eos>']
>>> sorted(default_stop_ids(tok, {"eos_token_id": [2, 7]}) - default_stop_ids(tok))
[7]
"""

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

GENERATION_CONFIG_FILE = "generation_config.json"
GENERATION_EOS_ATTRIBUTE = "rhlens_generation_eos_ids"
"""Attribute a tokenizer loaded from a checkpoint folder carries: the EOS ids of the folder's
``generation_config.json`` (:func:`attach_generation_eos`), which :func:`default_stop_ids` honours."""


def _bytes_to_unicode() -> dict[str, int]:
    """GPT-2's byte-level alphabet, inverted: printable stand-in character -> byte."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


_BYTE_LEVEL = _bytes_to_unicode()
_SP_SPACE = "\u2581"  # SentencePiece's '▁'


def _is_newline_text(text: str) -> bool:
    return bool(text) and "\n" in text and not text.strip()


def _token_texts(token: str) -> Iterable[str]:
    """Readings of a vocabulary string as text: literal, SentencePiece (``▁``, ``<0xNN>``) and
    GPT-2 byte-level."""
    yield token
    yield token.replace(_SP_SPACE, " ")
    if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
        try:
            yield bytes([int(token[3:5], 16)]).decode("latin-1")
        except ValueError:
            pass
    if all(c in _BYTE_LEVEL for c in token):
        yield bytes(_BYTE_LEVEL[c] for c in token).decode("utf-8", errors="replace")


_NEWLINE_SPELLINGS = ("\n", "<0x0A>", "\u010a")  # literal, SentencePiece byte, GPT-2 byte-level 'Ċ'


def newline_ids(tokenizer: Any) -> set[int]:
    """Ids of every token whose text is whitespace containing a line feed (see the module doc).

    A vocabulary string is a candidate when one of its readings (literal, SentencePiece,
    byte-level) is such text, and it is kept when the tokenizer decodes the token alone to such
    text (so a letter that only looks like a byte-level stand-in, as Maltese ``Ċ`` in a
    SentencePiece vocabulary, is not taken) or its literal string is one. Tokens mixing text and a
    newline (``".\\n"``) are not newline tokens. Single-token encodings of ``"\\n"`` and
    ``"\\n\\n"`` are included too.
    """
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    ids = set()
    for token, i in vocab.items():
        if not any(s in token for s in _NEWLINE_SPELLINGS):
            continue
        if not any(_is_newline_text(t) for t in _token_texts(token)):
            continue
        if _is_newline_text(token) or _is_newline_text(tokenizer.decode([i])):
            ids.add(int(i))
    for text in ("\n", "\n\n"):
        enc = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(enc) == 1:
            ids.add(int(enc[0]))
    unk = getattr(tokenizer, "unk_token_id", None)
    ids.discard(unk)
    return ids


def line_feed_ids(tokenizer: Any) -> set[int]:
    """Ids of the tokens whose text is exactly one line feed: byte-fallback SentencePiece's
    ``<0x0A>`` (the one token Wu et al.'s loop stops at), byte-level BPE's ``Ċ``, or a literal
    ``"\\n"``; the stop set of ``retrieval_scores(rule="wu-literal")``. Longer newline tokens
    (``ĊĊ``, ``"\\n\\n"``) are not included.

    Raises:
        ValueError: the tokenizer has no such token (naming its class).

    >>> from rhlens.models import word_level_tokenizer
    >>> tok = word_level_tokenizer(["a b", "\\n"])
    >>> tok.convert_ids_to_tokens(sorted(line_feed_ids(tok)))
    ['\\n']
    """
    ids = {i for i in newline_ids(tokenizer)
           if any(t == "\n" for t in _token_texts(tokenizer.convert_ids_to_tokens(i)))}
    if not ids:
        raise ValueError(
            f"{type(tokenizer).__name__}: no token is exactly a line feed (SentencePiece's <0x0A>, byte-level BPE's "
            "'\u010a' or a literal '\\n'), so Wu et al.'s stop rule (decode until a newline token) cannot be applied to "
            "this tokenizer; use rule='rhlens' (stops at EOS or any newline token)."
        )
    return ids


def _eos_list(value: Any, source: str) -> set[int]:
    if value is None:
        return set()
    if isinstance(value, bool) or not isinstance(value, (int, list, tuple, set, frozenset)):
        raise ValueError(f"{source}: eos_token_id must be an int or a list of ints, got {value!r}")
    values = [value] if isinstance(value, int) else list(value)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{source}: eos_token_id must be an int or a list of ints, got {value!r}")
    return {int(v) for v in values}


def generation_eos_ids(generation_config: Any) -> set[int]:
    """EOS ids of a Hugging Face generation config: a ``GenerationConfig`` (or any object with
    ``eos_token_id``), a dict, a ``generation_config.json`` path or the checkpoint folder holding
    one. ``eos_token_id`` may be an int or a list; ``None`` gives an empty set.

    >>> sorted(generation_eos_ids({"eos_token_id": [128001, 128009]}))
    [128001, 128009]
    """
    if generation_config is None:
        return set()
    source = "generation config"
    if isinstance(generation_config, (str, os.PathLike)):
        path = Path(generation_config)
        if path.is_dir():
            path = path / GENERATION_CONFIG_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no generation config file (expected {GENERATION_CONFIG_FILE})")
        source = str(path)
        with open(path, encoding="utf-8") as f:
            generation_config = json.load(f)
    if isinstance(generation_config, Mapping):
        return _eos_list(generation_config.get("eos_token_id"), source)
    return _eos_list(getattr(generation_config, "eos_token_id", None), type(generation_config).__name__)


def default_stop_ids(tokenizer: Any, generation_config: Any = None) -> set[int]:
    """Token ids that end a greedy continuation: EOS (the tokenizer's, and the generation
    config's list when given) and every newline token (:func:`newline_ids`), as Wu et al. stop
    at EOS or ``<0x0A>``.

    Args:
        tokenizer: a Hugging Face tokenizer (fast or slow).
        generation_config: optional; see :func:`generation_eos_ids`.
    """
    stop = newline_ids(tokenizer)
    stop |= _eos_list(getattr(tokenizer, "eos_token_id", None), f"{type(tokenizer).__name__}.eos_token_id")
    stop |= _eos_list(getattr(tokenizer, GENERATION_EOS_ATTRIBUTE, None), f"{GENERATION_EOS_ATTRIBUTE} of the tokenizer")
    stop |= generation_eos_ids(generation_config)
    return stop


def attach_generation_eos(tokenizer: Any, folder: str | os.PathLike) -> Any:
    """Record the EOS ids of ``folder/generation_config.json`` on ``tokenizer`` (when the file
    exists) so that :func:`default_stop_ids` stops where the checkpoint's own ``generate`` would
    (Llama-3-Instruct ends a turn with ``<|eot_id|>``, which is not the tokenizer's EOS).
    Returns ``tokenizer``.
    """
    path = Path(folder) / GENERATION_CONFIG_FILE
    if path.is_file():
        setattr(tokenizer, GENERATION_EOS_ATTRIBUTE, sorted(generation_eos_ids(path)))
    return tokenizer
