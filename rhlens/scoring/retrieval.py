"""Retrieval scores per head (Wu et al., 2024), all heads at once, in bounded memory.

:func:`retrieval_scores` implements Wu et al.'s definition (``method="decode"``, their
``retrieval_head_detection.py``) and a teacher-forced variant (``method="forced"``).

How it runs. Each method is a detector (:class:`rhlens.scoring.wu.WuDecode`,
:class:`rhlens.scoring.wu.WuForced`) run by :func:`rhlens.scoring.detector.score_heads` on the run
engine (:mod:`rhlens.engine`, the one decoding loop of rhlens): the attention rows being scored
are reduced to their ``top_k`` key positions right away (``[batch, head, k]`` indices) and looked
up in a ``[batch, context]`` table holding the prompt token at answer-span positions and ``-1``
elsewhere (:func:`rhlens.scoring.answer_spans.answer_lookup`). The generated (or gold) token is
then compared with all layers, heads and examples in one tensor operation. Examples are batched
(left-padded, sorted by length); prompts go through the key/value cache in chunks of
``chunk_size`` tokens. As in Wu et al.'s code, the part of the prompt that is never scored (all
but the last prompt token; in forced mode, everything before the first answer-predicting row) is
prefilled unobserved, through fused SDPA attention on a HookedTransformer
(:func:`rhlens.adapter.fused.fused_attention`), so no pattern is computed there at all.

Memory. No full attention pattern is kept: per layer, attention memory is what the model's
forward itself needs for one chunk, ``O(batch x heads x chunk x context)``, plus ``O(batch x
heads x k)`` per layer for the reduced rows. Caveat: a ``TransformerBridge`` runs Hugging Face's
eager attention, so there attention memory per chunk is the full ``[batch, head, chunk,
context]`` pattern.

Faithful to Wu et al.'s ``retrieval_head_detection.py`` (``decode`` / ``retrieval_calculate``):
step 0 is the last prompt token's forward; the step that produces the stop token is scored; at
most one hit per head and step even with ``top_k > 1``; an answer-span position can hit at any
number of steps; the hit weight is ``1 / (answer-span tokens)`` (Wu's ``real_needle``); trials
whose ROUGE-1 recall of the answer is not above the gate are dropped, the score is the mean over
the rest. Decoding stops at :func:`rhlens.stopping.default_stop_ids` (EOS, the generation
config's EOS list, and every newline token: Llama's ``<0x0A>`` as in Wu's code). Deviations, all
deliberate:

- Span tokens come from the tokenizer's offset mapping (Wu: the first token window whose id set
  overlaps the needle's ids by > 90%).
- Several answer spans per example are one target: the weight is ``1 / (all their tokens)``.
- ROUGE-1 recall is :func:`rhlens.tasks.metrics.rouge1_recall` (lowercased word unigrams, no
  stemming; Wu: ``rouge_score`` with the Porter stemmer), the best over the answer and its aliases.
- When no example passes the gate, scores are zeros and a warning names the first responses
  (Wu's file would hold no trial).
- Batching pads on the left; hits equal the unbatched reference in the tests, but float rounding
  could in principle flip a near-tie in a top-k or an argmax.
- Decoding also stops at EOS (Wu's loop stops only at ``<0x0A>`` or the fixed id 144).

``rule="wu-literal"`` (:mod:`rhlens.scoring.wu_literal`) follows Wu's code in the stop rule, the
span and the gate instead.
"""

from typing import Any, Sequence

from rhlens.adapter import Model
from rhlens.scoring.answer_spans import check_method, check_rule
from rhlens.scoring.detector import score_heads
from rhlens.scoring.results import HeadScores
from rhlens.scoring.wu import WuDecode, WuForced
from rhlens.scoring.wu_literal import WuLiteral


def retrieval_scores(
    model: Model,
    examples: Sequence[Any],
    *,
    method: str = "decode",  # "decode" | "forced"; checked by check_method with its own message
    max_new_tokens: int = 50,
    rouge_gate: float | None = 0.5,
    top_k: int = 1,
    gate: str = "rouge",  # "rouge" | "exact" (rhlens.scoring.rouge_gate.GATES)
    batch_size: int = 8,
    chunk_size: int | None = 512,
    progress: bool = True,
    rule: str = "rhlens",  # "rhlens" | "wu-literal" (rhlens.scoring.answer_spans.RULES)
) -> HeadScores:
    """Wu et al.'s retrieval score of every attention head, averaged over ``examples``.

    ``method="decode"`` (Wu et al.'s definition; ``rule="wu-literal"`` for their code to the
    letter): greedy decoding from each prompt, stopping at EOS or a newline token or after
    ``max_new_tokens``. At every decoding step (step 0 is the forward
    of the last prompt position) and for every head, take the ``top_k`` key positions of the last
    query's attention. The head scores a hit when one of them lies in an answer span
    (``Example.answer_spans``, Wu's ``real_needle``) and the token generated at that step equals
    the prompt token there; each hit adds ``1 / (answer-span tokens)``, at most one hit per head
    per step (Wu's ``break``). The step that produces the stop token is scored too, as in Wu's
    loop. An example counts when the ROUGE-1 recall of the answer in the decoded response exceeds
    ``rouge_gate`` (``None``: always); a head's score is the mean over counted examples.

    ``method="forced"``: the gold completion (``" " + answer`` and EOS) is teacher-forced in one
    chunked pass; the query at position ``t - 1`` is scored against the gold token at ``t`` for
    every answer token including EOS. Differences from decode: (a) hits are counted for the gold
    tokens whether or not the model would have produced them, and the number of scored steps is
    the answer's length, not the response's; (b) the gate uses the teacher-forced greedy
    predictions (argmax at each answer position, cut at the first stop token) as the response;
    (c) one forward pass instead of one per token, so it is much faster. When the greedy output
    is the gold answer followed by EOS, both methods give identical hits and scores.

    Args:
        model: a ``HookedTransformer`` or ``TransformerBridge`` with a fast tokenizer.
        examples: :class:`rhlens.tasks.Example` records (prompt, answer, answer and needle
            character spans), each checked with ``validate()``.
        method: ``"decode"`` or ``"forced"``.
        max_new_tokens: decoding steps at most (Wu et al.: 50); unused by ``"forced"``.
        rouge_gate: ROUGE-1 recall an example must exceed to count; ``None`` disables the gate.
        top_k: key positions checked per head and step (Wu et al.: 1).
        gate: what the gate measures: ``"rouge"`` (Wu et al.: ROUGE-1 recall of the answer's
            words in the response; it passes ``New York`` for ``New York City`` and ``not
            Paris`` for ``Paris``) or ``"exact"`` (SQuAD exact match after normalisation; use it
            where recall is too loose, e.g. numbers, identifiers, short names). The cases each
            gets wrong are listed in docs/scoring.md.
        batch_size: examples per forward.
        chunk_size: prompt tokens per prefill forward (``None``: the whole prompt at once).
        progress: show a tqdm bar over batches.
        rule: ``"rhlens"`` (the rule above, the default) or ``"wu-literal"``: Wu et al.'s code to
            the letter (:mod:`rhlens.scoring.wu_literal`), ``method="decode"`` and ``gate="rouge"``
            only. It differs in three places: decoding stops only at the line-feed token
            (``<0x0A>``), never at EOS; the answer's span is the first prompt window whose token set
            covers over 90% of the answer's tokens (Wu's ``find_needle_idx``; ``answer_spans`` and
            aliases unused); the gate is ``rouge_score``'s stemmed ROUGE-1 recall (``pip install
            'rhlens[wu]'``). Use it to compare with head-score files made by Wu et al.'s code;
            use ``"rhlens"`` otherwise (Wu's window finds no span for kv values in JSON quotes or
            SummHay ids, its gate fails non-Latin answers, and a model that ends its answer
            with EOS keeps decoding).

    Returns:
        :class:`HeadScores` with ``scores`` ``[n_layers, n_heads]`` per query head.

    Raises:
        TypeError: an element of ``examples`` is not an ``Example`` (e.g. a dict), naming its index.
        ValueError: an unknown ``rule``, or ``"wu-literal"`` with ``method="forced"``, ``gate="exact"``
            or a tokenizer without a line-feed token; naming the example when it is invalid (a span past the prompt's end ...), has
            no answer span, a span covers no token, or its prompt (plus ``max_new_tokens``, or
            plus the answer) exceeds the model's context.

    >>> from rhlens.models import tiny_llama, word_level_tokenizer
    >>> from rhlens.tasks.example import Example
    >>> prompt = "the key is red . the sky is blue . Question : what is the key ? Answer :"
    >>> ex = Example(prompt=prompt, answer="red", needles=((11, 14),), task="kv", variant="symbolic")
    >>> model = tiny_llama(tokenizer=word_level_tokenizer([prompt]), seed=0)
    >>> hs = retrieval_scores(model, [ex], max_new_tokens=4, rouge_gate=None, progress=False)
    >>> hs.scores.shape, hs.n_counted
    (torch.Size([2, 4]), 1)
    """
    check_method(method)
    check_rule(rule, method, gate)
    kind = WuLiteral if rule == "wu-literal" else WuDecode if method == "decode" else WuForced
    detector = kind(rouge_gate=rouge_gate, top_k=top_k, max_new_tokens=max_new_tokens, gate=gate)
    return score_heads(model, examples, detector, batch_size=batch_size, chunk_size=chunk_size, progress=progress)
