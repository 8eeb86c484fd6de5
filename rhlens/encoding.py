"""Turn :class:`rhlens.tasks.Example` text into token ids with located needle and answer spans,
check examples (:func:`check_examples`) and that they fit a model's context
(:func:`check_fits_context`, the one context-length check), and left-pad batches.

Character spans map to token spans through the fast tokenizer's offset mapping, never by
searching for token ids. A token belongs to a span when its characters overlap the span.

Example: :func:`encode_example`.
"""

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from rhlens.adapter import Model, architecture, prepends_bos, tokenizer_of
from rhlens.models.tokenizer import check_unknown_tokens
from rhlens.tasks.example import Example

Span = tuple[int, int]


@dataclass(frozen=True)
class EncodedExample:
    """One example as token ids.

    Attributes:
        tokens: prompt tokens (with BOS when the model uses one), then, when encoded
            ``with_answer=True``, the answer tokens and EOS.
        prompt_len: number of prompt tokens; ``tokens[:prompt_len]`` is the prompt.
        needle_spans: ``[start, end)`` token spans of the needles (``Example.needles``: the
            evidence), in ``tokens`` coordinates.
        completion_span: ``[start, end)`` token span of the completion (the answer the model
            produces, and EOS); ``(prompt_len, prompt_len)`` when encoded without the answer.
        index: position of the example in the list it came from (for error messages).
        answer_spans: ``[start, end)`` token spans, in the prompt, of ``Example.answer_spans``
            (the characters a retrieval head copies), in ``tokens`` coordinates.
    """

    tokens: list[int]
    prompt_len: int
    needle_spans: tuple[Span, ...]
    completion_span: Span
    index: int = 0
    meta: dict = field(default_factory=dict)
    answer_spans: tuple[Span, ...] = ()

    @property
    def prompt_tokens(self) -> list[int]:
        return self.tokens[: self.prompt_len]

    @property
    def answer_tokens(self) -> list[int]:
        """The completion's tokens (``tokens[completion_span]``)."""
        return self.tokens[self.completion_span[0] : self.completion_span[1]]

    def needle_mask(self, length: int | None = None) -> Tensor:
        """Bool ``[length]`` mask, True at needle tokens (``length`` defaults to ``len(tokens)``)."""
        mask = torch.zeros(length if length is not None else len(self.tokens), dtype=torch.bool)
        for start, end in self.needle_spans:
            mask[start:end] = True
        return mask


def char_span_to_token_span(offsets: Sequence[Span], span: Span) -> Span:
    """The ``[start, end)`` token span whose characters overlap the character ``span``.

    Special tokens (offset ``(0, 0)``) never match. Raises ``ValueError`` when no token overlaps.
    """
    c0, c1 = span
    hits = [i for i, (a, b) in enumerate(offsets) if b > a and a < c1 and b > c0]
    if not hits:
        raise ValueError(f"No token overlaps characters {c0}:{c1}")
    return hits[0], hits[-1] + 1


def _encode(tokenizer: Any, text: str) -> tuple[list[int], list[Span]]:
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def encode_example(
    tokenizer: Any,
    example: Any,
    *,
    with_answer: bool = True,
    prepend_bos: bool = True,
    append_eos: bool = True,
    index: int = 0,
) -> EncodedExample:
    """Encode ``example.prompt`` (and ``example.completion``) with located spans.

    With the answer, prompt and completion are tokenized as one text and split at the first token
    that reaches past the prompt's characters, so the answer's tokens are the ones the model
    produces when it continues the prompt (``prompt_len`` is where they start). BOS comes
    from ``tokenizer.bos_token_id`` when ``prepend_bos``; EOS ends the answer when
    ``append_eos`` and the tokenizer has one.

    Raises:
        ValueError: naming the example index and needle when a needle is empty, reaches past the
            prompt or maps to no token, or when the tokenizer is not a fast tokenizer (no offset
            mapping).

    >>> from rhlens.models import word_level_tokenizer
    >>> from rhlens.tasks import Example
    >>> ex = Example(prompt="Alice lives in Paris.\\nQuestion: Where does Alice live?\\nAnswer:",
    ...              answer="Paris", needles=((15, 20),), task="mdqa", variant="realistic")
    >>> tok = word_level_tokenizer([ex.prompt + ex.completion])
    >>> enc = encode_example(tok, ex)
    >>> tok.convert_ids_to_tokens(enc.tokens[enc.needle_spans[0][0]:enc.needle_spans[0][1]])
    ['Paris']
    >>> tok.convert_ids_to_tokens(enc.tokens[enc.completion_span[0]:enc.completion_span[1]])
    ['Paris', '<eos>']
    >>> enc.answer_spans == enc.needle_spans  # the answer's own characters in the prompt
    True
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"rhlens needs a fast tokenizer (offset mapping) to locate needles; got {type(tokenizer).__name__}. "
            "Load it with AutoTokenizer.from_pretrained(path, use_fast=True)."
        )
    n_prompt_chars = len(example.prompt)
    if with_answer:
        # Tokenize prompt and completion together and split where tokens leave the prompt: on its
        # own, " Lily" becomes ['▁', '▁Lily'] in SentencePiece tokenizers, a token the model never
        # sees after a prompt.
        ids, offsets = _encode(tokenizer, example.prompt + example.completion)
        n_prompt = next((i for i, (a, b) in enumerate(offsets) if b > n_prompt_chars), len(ids))
    else:
        ids, offsets = _encode(tokenizer, example.prompt)
        n_prompt = len(ids)
    bos = [tokenizer.bos_token_id] if prepend_bos and tokenizer.bos_token_id is not None else []
    shift = len(bos)
    where = f"Example {index} (task {example.task!r})"
    needle_spans = _token_spans(example.needles, "needle", offsets[:n_prompt], example.prompt, shift, where)
    answer_spans = _token_spans(getattr(example, "answer_spans", ()) or (), "answer span", offsets[:n_prompt],
                                example.prompt, shift, where)
    tokens = bos + ids[:n_prompt]
    prompt_len = len(tokens)
    if with_answer:
        ans_ids = ids[n_prompt:]
        if append_eos and tokenizer.eos_token_id is not None:
            ans_ids = ans_ids + [tokenizer.eos_token_id]
        if not ans_ids:
            raise ValueError(f"Example {index} (task {example.task!r}): the answer {example.answer!r} has no tokens")
        tokens = tokens + ans_ids
    check_unknown_tokens(tokenizer, tokens[:prompt_len], needle_spans, where=where, answer_spans=answer_spans)
    return EncodedExample(
        tokens=tokens,
        prompt_len=prompt_len,
        needle_spans=needle_spans,
        completion_span=(prompt_len, len(tokens)),
        index=index,
        answer_spans=answer_spans,
    )


def _token_spans(
    spans: Sequence[Span], what: str, offsets: Sequence[Span], prompt: str, shift: int, where: str
) -> tuple[Span, ...]:
    """The token spans (after ``shift`` BOS tokens) of character ``spans`` of ``prompt``, whose
    tokens have ``offsets``; errors name ``where``, ``what`` and the span."""
    out = []
    for k, (c0, c1) in enumerate(spans):
        if not 0 <= c0 < c1 <= len(prompt):
            raise ValueError(
                f"{where}: {what} {k} at characters {c0}:{c1} is empty or outside the prompt ({len(prompt)} "
                "characters); spans are never clamped"
            )
        try:
            s, e = char_span_to_token_span(offsets, (int(c0), int(c1)))
        except ValueError as err:
            raise ValueError(f"{where}: {what} {k} at characters {c0}:{c1} ({prompt[c0:c1]!r}) covers no prompt token: {err}") from None
        out.append((s + shift, e + shift))
    return tuple(out)


def encode_examples(tokenizer: Any, examples: Sequence[Any], **kwargs: Any) -> list[EncodedExample]:
    """:func:`encode_example` over a list, each tagged with its index."""
    return [encode_example(tokenizer, ex, index=i, **kwargs) for i, ex in enumerate(examples)]


CONTEXT_FIX = "Use shorter examples, a smaller max_new_tokens, or extend the context (rhlens.extend_context)."


def check_fits_context(
    n_ctx: int, n_tokens: int, *, where: str, extra: int = 0, extra_what: str = "", fix: str = CONTEXT_FIX
) -> None:
    """The one context-length check of rhlens: raise a ``ValueError`` when ``n_tokens`` (plus
    ``extra`` positions that will run after them, described by ``extra_what``, by default
    ``max_new_tokens=<extra>``) exceed ``n_ctx``.

    >>> check_fits_context(8, 6, where="Prompt 0", extra=2)
    >>> check_fits_context(8, 7, where="Prompt 0", extra=2)
    Traceback (most recent call last):
    ...
    ValueError: Prompt 0 has 7 tokens plus max_new_tokens=2 (9 in all) but the model's context is 8. Use shorter examples, a smaller max_new_tokens, or extend the context (rhlens.extend_context).
    """
    need = n_tokens + extra
    if need > n_ctx:
        more = f" plus {extra_what or f'max_new_tokens={extra}'} ({need} in all)" if extra else ""
        raise ValueError(f"{where} has {n_tokens} tokens{more} but the model's context is {n_ctx}. {fix}")


def check_fits(encoded: Sequence[EncodedExample], n_ctx: int, *, what: str = "example") -> None:
    """Raise a ``ValueError`` naming the first example longer than the model's ``n_ctx``."""
    for enc in encoded:
        check_fits_context(
            n_ctx, len(enc.tokens), where=f"{what} {enc.index}",
            fix="Use shorter examples, rhlens.extend_context(model, n_ctx), or an explicit truncation policy.",
        )


def check_examples(examples: Sequence[Any], *, what: str) -> None:
    """Raise unless ``examples`` is a non-empty list of valid :class:`rhlens.tasks.Example`.

    Errors name ``what`` (the analyzer) and the index: a ``dict`` gets a ``TypeError`` saying to
    build it with ``Example.from_dict``; an invalid example (empty answer, a span past the prompt's
    end ...) the ``ValueError`` of :meth:`Example.validate`.
    """
    if isinstance(examples, (Example, dict, str)) or not hasattr(examples, "__len__"):
        raise TypeError(f"{what} takes a list of rhlens.tasks.Example, got {type(examples).__name__}")
    if not len(examples):
        raise ValueError(f"{what} needs at least one example")
    for i, ex in enumerate(examples):
        if not isinstance(ex, Example):
            hint = " Build it with rhlens.Example.from_dict(d)." if isinstance(ex, dict) else ""
            raise TypeError(f"{what}: examples[{i}] is a {type(ex).__name__}, not an rhlens.tasks.Example.{hint}")
        try:
            ex.validate()
        except ValueError as err:
            raise ValueError(f"{what}: example {i} (task {ex.task!r}) is invalid: {err}") from None


def encode_for_model(
    model: Model,
    examples: Sequence[Any],
    *,
    what: str,
    with_answer: bool,
    append_eos: bool = True,
    extra_tokens: int = 0,
) -> list[EncodedExample]:
    """Check and encode ``examples`` for ``model`` (BOS when the model uses one).

    Args:
        with_answer: encode prompt and answer (teacher forcing) or the prompt alone (decoding).
        append_eos: end the answer with EOS (``with_answer`` only).
        extra_tokens: positions that will run beyond the encoding (``max_new_tokens``).

    Raises:
        TypeError, ValueError: see :func:`check_examples`; and a ``ValueError`` naming the first
        example that does not fit the model's context (:func:`check_fits_context`).
    """
    check_examples(examples, what=what)
    tok = tokenizer_of(model)
    bos = prepends_bos(model)
    n_ctx = architecture(model).n_ctx
    out = []
    for i, ex in enumerate(examples):
        enc = encode_example(tok, ex, with_answer=with_answer, append_eos=append_eos, prepend_bos=bos, index=i)
        answer = len(enc.tokens) - enc.prompt_len
        runs_after = [f"an answer of {answer}"] * bool(answer) + [f"max_new_tokens={extra_tokens}"] * bool(extra_tokens)
        check_fits_context(
            n_ctx, enc.prompt_len, where=f"{what}: example {i}", extra=answer + extra_tokens, extra_what=" plus ".join(runs_after)
        )
        out.append(enc)
    return out


@dataclass(frozen=True)
class PaddedBatch:
    """Left-padded token ids for a batch.

    Attributes:
        tokens: ``[batch, pos]`` ids, padding on the left.
        attention_mask: ``[batch, pos]`` 1 at real tokens, 0 at padding.
        offsets: ``[batch]`` number of padding tokens in front of each row; token ``i`` of row
            ``b`` sits at column ``offsets[b] + i``.
    """

    tokens: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"]
    offsets: Int[Tensor, "batch"]


def pad_left(sequences: Sequence[Sequence[int]], pad_id: int, *, device: Any = None) -> PaddedBatch:
    """Left-pad id lists into a :class:`PaddedBatch`.

    >>> b = pad_left([[5, 6, 7], [8]], pad_id=0)
    >>> b.tokens.tolist(), b.attention_mask.tolist(), b.offsets.tolist()
    ([[5, 6, 7], [0, 0, 8]], [[1, 1, 1], [0, 0, 1]], [0, 2])
    """
    if not sequences:
        raise ValueError("pad_left needs at least one sequence")
    width = max(len(s) for s in sequences)
    tokens = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    offsets = torch.zeros(len(sequences), dtype=torch.long)
    for b, seq in enumerate(sequences):
        off = width - len(seq)
        offsets[b] = off
        if seq:
            tokens[b, off:] = torch.tensor(list(seq), dtype=torch.long)
            mask[b, off:] = 1
    if device is not None:
        tokens, mask, offsets = tokens.to(device), mask.to(device), offsets.to(device)
    return PaddedBatch(tokens=tokens, attention_mask=mask, offsets=offsets)


def pad_id_of(tokenizer: Any) -> int:
    """The tokenizer's pad id, falling back to EOS, then 0."""
    for tid in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    return 0
