"""Haystack documents written by a language model, cached on disk by prompt hash.

``LLMDocumentSource(generate, cache_dir)`` wraps any ``generate(prompt) -> str``
callable (a TransformerLens model's sampler, an API client). Each prompt's
output is stored in ``cache_dir/<sha256>.json`` (written atomically), so a set
is reproducible and the model is called once per distinct prompt. Pass it to
:func:`rhlens.tasks.generate` as ``documents=source`` with a varied-haystack
variant; LLM text is outside :func:`rhlens.tasks.vocab.vocabulary`. Cache
entries are validated when read (:class:`CacheEntryError` names the file, the
entry's prompt and the field), and the generators drop every sentence that
mentions the example's answer or needle entities, as the world-built haystack
never states them (:func:`rhlens.tasks.generators.common.llm_stream`).

>>> import tempfile
>>> calls = []
>>> def fake(prompt):
...     calls.append(prompt)
...     return "Lisbon has trams. It is hilly."
>>> src = LLMDocumentSource(fake, tempfile.mkdtemp())
>>> src.sentences("Lisbon", 0)
['Lisbon has trams.', 'It is hilly.']
>>> _ = src.sentences("Lisbon", 0); len(calls)
1
"""

import hashlib
import json
import os
import re

from rhlens.files import write_json_atomic


class CacheEntryError(ValueError):
    """A cache file is not a ``{"prompt": str, "text": str}`` entry for its prompt."""

DEFAULT_TEMPLATE = ("Write a short encyclopedia-style paragraph about {title}. "
                    "This is part {part} of the article; do not repeat earlier parts.")

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> list:
    """Split text at sentence-final punctuation followed by whitespace."""
    return [x.strip() for x in _SENTENCE_END.split(text.strip()) if x.strip()]


def _bad_entry(path: str, prompt: str, what: str) -> CacheEntryError:
    """The error for the cache entry at ``path`` (of ``prompt``) that ``what`` says is bad."""
    return CacheEntryError(f"{path}: the cache entry for prompt {prompt!r:.70} {what}; "
                           f"delete the file to generate it again")


class LLMDocumentSource:
    """A document source backed by ``generate(prompt) -> str`` with an on-disk cache."""

    def __init__(self, generate, cache_dir, *, template: str = DEFAULT_TEMPLATE):
        if not callable(generate):
            raise TypeError("generate must be a callable prompt -> str")
        self.generate = generate
        self.cache_dir = os.fspath(cache_dir)
        self.template = template
        os.makedirs(self.cache_dir, exist_ok=True)

    def _path(self, prompt: str) -> str:
        digest = hashlib.sha256(prompt.encode("utf-8")).hexdigest()
        return os.path.join(self.cache_dir, digest + ".json")

    def complete(self, prompt: str) -> str:
        """The cached output for ``prompt``, calling ``generate`` only on a miss."""
        path = self._path(prompt)
        if os.path.exists(path):
            return self._read_entry(path, prompt)
        text = self.generate(prompt)
        if not isinstance(text, str):
            raise TypeError(f"generate returned {type(text).__name__}, expected str")
        write_json_atomic(path, {"prompt": prompt, "text": text}, indent=None)
        return text

    @staticmethod
    def _read_entry(path: str, prompt: str) -> str:
        try:
            with open(path, encoding="utf-8") as f:
                record = json.load(f)
        except UnicodeDecodeError as err:
            raise _bad_entry(path, prompt, f"is not UTF-8 text ({err.reason} at byte {err.start})") from None
        except json.JSONDecodeError as err:
            raise _bad_entry(path, prompt, f"is not valid JSON ({err.msg}, line {err.lineno})") from None
        if not isinstance(record, dict):
            raise _bad_entry(path, prompt, f"must be a JSON object, not {type(record).__name__}")
        for key in ("prompt", "text"):
            if not isinstance(record.get(key), str):
                raise _bad_entry(path, prompt, f"field {key!r} must be a string, got {record.get(key)!r:.40}")
        if record["prompt"] != prompt:
            raise _bad_entry(path, prompt, "holds a different prompt (field 'prompt')")
        return record["text"]

    def document(self, title: str, part: int = 0) -> str:
        """Part ``part`` of a document about ``title``."""
        return self.complete(self.template.format(title=title, part=part + 1))

    def sentences(self, title: str, part: int = 0) -> list:
        """The sentences of :meth:`document` (the generators' haystack interface)."""
        return split_sentences(self.document(title, part))
