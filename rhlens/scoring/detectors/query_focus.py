"""QRHead-style query focus: calibrated attention from the question to the gold documents.

The rule, as QRHead's code computes it (Zhang et al. 2025, "Query-Focused Retrieval Heads Improve
Long-Context Reasoning and Re-ranking"; repository ``princeton-pli/QRHead``, read at commit
``54243e2``: ``src/qrretriever/attn_retriever.py``, ``score_docs_per_head_for_detection`` and
``score_per_token_attention_to_query``; ``exp_scripts/detection/detect_qrhead_lme.py``,
``lme_eval`` and ``score_heads``):

1. Query rows. The *query span* is the prompt's tail from the late instruction through the query
   and the chat suffix (QRHead: ``"Please find information ...\\n\\nQuery: <q><|eot_id|>...
   assistant<|end_header_id|>"``). Here: from the question's label to the end of the prompt,
   ``"Question: <q>\\nAnswer:"`` (kv: ``"Key: <k>\\nCorresponding value:"``), see
   :func:`rhlens.tasks.regions.regions`.
2. Per-token score. For every layer and head, the attention probabilities (softmax over every
   earlier key, causal) of each query-span token, *averaged over the query-span tokens*:
   ``[layer, head, key]``.
3. Calibration. The same with the question replaced by the null query ``"N/A"`` (everything before
   the question unchanged; QRHead reuses the KV cache of that prefix), subtracted key by key.
4. Per document. Over the document's tokens (QRHead: ``"[i] title\\ntext"``; here the document
   spans of :func:`rhlens.tasks.regions.regions`), per head: threshold = mean - 2 x std (unbiased,
   ``torch.std``) of the calibrated scores; the document's score is the sum of the calibrated
   scores above the threshold (QRHead's outlier removal). A one-token document has an undefined
   std and scores 0, as in QRHead.
5. Per example, the sum over its gold documents (here: those holding a needle) ("score over
   gold"; 0 when it has none); a head's QRScore is the mean over examples.

Deviation: the prompt is rhlens's task prompt (no chat template, no retrieval instruction of
QRHead's own). As in QRHead the text before the question is run once and its key/value cache
serves both questions (:func:`rhlens.scoring.detectors.rows.forked_attention`: the prefixes of a
batch left-padded and prefilled once, the cache forked, each question's tail run after it), so the
token prefix before the query rows must be the same in both prompts (QRHead asserts it too).
"""

from typing import Any, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from rhlens.adapter import Model, architecture, prepends_bos, tokenizer_of
from rhlens.encoding import EncodedExample, encode_example, encode_for_model
from rhlens.scoring.answer_spans import answer_mask
from rhlens.scoring.detectors.rows import forked_attention, token_mask
from rhlens.scoring.results import HeadScores
from rhlens.tasks.regions import NULL_QUESTION, null_prompt, regions


def document_scores(calibrated: Float[Tensor, "layer head key"], spans: Sequence[tuple[int, int]]) -> Float[Tensor, "doc layer head"]:
    """QRHead's per-document score (step 4): per head, the sum of the calibrated scores over the
    document's keys ``[a, b)`` that exceed their mean minus twice their std.

    >>> cal = torch.tensor([[[0.1, 0.2, -5.0, 0.3, 0.2, 0.1, 0.2]]])
    >>> document_scores(cal, [(0, 7), (0, 1)])[:, 0, 0]
    tensor([1.1000, 0.0000])
    """
    out = []
    for a, b in spans:
        if b - a < 2:  # the std of one value is undefined: QRHead's threshold is NaN, nothing passes it
            out.append(torch.zeros(calibrated.shape[:-1]))
            continue
        x = calibrated[..., a:b].double()
        threshold = x.mean(dim=-1) - 2 * x.std(dim=-1)
        out.append(x.masked_fill(~(x > threshold[..., None]), 0.0).sum(dim=-1).float())
    return torch.stack(out)


def _query_rows(tok: Any, text: str, start_char: int, n_tokens: int, n_bos: int, what: str) -> Tensor:
    return token_mask(tok, text, [(start_char, len(text))], n_tokens=n_tokens, n_bos=n_bos, what=what)[None]


def query_focus(
    model: Model,
    examples: Sequence[Any],
    *,
    null: str = NULL_QUESTION,
    batch_size: int = 8,
    chunk_size: int | None = 512,
    progress: bool = True,
) -> HeadScores:
    """Every head's QRHead score (the module docstring gives the rule and its source).

    Args:
        null: the null question of the calibration (QRHead: ``"N/A"``).

    Returns:
        :class:`HeadScores` whose ``per_example`` ``[n_examples, n_layers, n_heads]`` is the
        calibrated attention mass on the example's gold documents; every example is counted.

    Raises:
        ValueError: naming the example when its prompt has no question or document
            (:func:`rhlens.tasks.regions.regions`) or the null prompt tokenizes the text before
            the question differently.

    >>> from rhlens.models import tiny_llama, word_level_tokenizer
    >>> from rhlens.tasks.templates import document_prompt
    >>> from rhlens.tasks import Example
    >>> p = document_prompt(["Document [1] Ann is 3 .", "Document [2] Bo lives in Rome ."], "Where is Bo ?", task="mdqa")
    >>> ex = Example(p, "Rome", ((p.index("Bo lives"), p.index("Rome") + 4),), "mdqa", "real")
    >>> model = tiny_llama(tokenizer=word_level_tokenizer([p, "N/A", "Rome"]), seed=0)
    >>> query_focus(model, [ex], progress=False).scores.shape
    torch.Size([2, 4])
    """
    return _focus(model, examples, null=null, mass_target=None, batch_size=batch_size, chunk_size=chunk_size,
                  progress=progress)[0]


def query_focus_and_mass(
    model: Model,
    examples: Sequence[Any],
    *,
    target: str = "needle",
    null: str = NULL_QUESTION,
    batch_size: int = 8,
    chunk_size: int | None = 512,
    progress: bool = True,
) -> tuple[HeadScores, HeadScores]:
    """:func:`query_focus` and :func:`rhlens.scoring.detectors.attention_mass.attention_mass`
    (``rows="last"``, ``target``) from one run: the last prompt row is the real question's last
    row, so its attention mass comes from the same forward (what :func:`rhlens.compare_detectors`
    uses when both are asked for).

    >>> from rhlens.models import tiny_llama, word_level_tokenizer
    >>> from rhlens.tasks import generate
    >>> ex = generate("kv", "symbolic", 1, context_tokens=64, seed=0)[0]  # documents: the key-value pairs
    >>> model = tiny_llama(tokenizer=word_level_tokenizer([ex.prompt + ex.completion, "N/A"]), n_layers=2, n_heads=4)
    >>> qr, mass = query_focus_and_mass(model, [ex], progress=False)
    >>> qr.meta["method"], mass.meta["method"], mass.scores.shape
    ('query_focus', 'attention_mass', torch.Size([2, 4]))
    """
    qr, mass = _focus(model, examples, null=null, mass_target=target, batch_size=batch_size, chunk_size=chunk_size,
                      progress=progress)
    assert mass is not None
    return qr, mass


def _focus(
    model: Model, examples: Sequence[Any], *, null: str, mass_target: str | None, batch_size: int,
    chunk_size: int | None, progress: bool,
) -> tuple[HeadScores, HeadScores | None]:
    """The forked run of :func:`query_focus`; with ``mass_target`` also the last row's attention
    mass on the needle (or the answer span) as a second row group of the real question."""
    if mass_target not in (None, "needle", "answer"):
        raise ValueError(f"attention_mass: target must be 'needle' or 'answer', got {mass_target!r}")
    tok, bos = tokenizer_of(model), prepends_bos(model)
    n_bos = 1 if bos and tok.bos_token_id is not None else 0
    real = encode_for_model(model, examples, what="query_focus", with_answer=False)
    items = [_prepare(tok, ex, enc, null, bos, n_bos) for ex, enc in zip(examples, real)]
    keys = [enc.needle_mask(enc.prompt_len) if mass_target == "needle" else answer_mask(ex, enc)
            for ex, enc in zip(examples, real)] if mass_target else []
    arch = architecture(model)
    per_example = torch.zeros(len(examples), arch.n_layers, arch.n_heads)
    mass = torch.zeros_like(per_example)

    def reduce(i: int, means: list[Tensor]) -> None:
        start, docs, gold = items[i][4], items[i][5], items[i][6]
        calibrated = means[0][0][..., :start] - means[1][0][..., :start]
        if gold:
            per_example[i] = document_scores(calibrated, [docs[g] for g in gold]).sum(dim=0)
        if mass_target:
            mass[i] = means[0][1][..., keys[i]].sum(dim=-1)

    def real_rows(it: tuple) -> Tensor:
        q = it[2][0, it[4] :]
        if not mass_target:
            return q[None]
        last = torch.zeros_like(q)
        last[-1] = True
        return torch.stack([q, last])

    prefixes = [it[0].tokens[: it[4]] for it in items]
    tails = [[it[0].tokens[it[4] :], it[1].tokens[it[4] :]] for it in items]
    rows = [[real_rows(it), it[3][:, it[4] :]] for it in items]
    forked_attention(model, prefixes, tails, rows, reduce, batch_size=batch_size, chunk_size=chunk_size,
                     progress=progress, desc="query focus (QRHead)" + (" and attention mass" if mass_target else ""))
    qr = HeadScores(per_example=per_example, n_kv_heads=arch.n_kv_heads, meta={"method": "query_focus", "null": null})
    if not mass_target:
        return qr, None
    return qr, HeadScores(per_example=mass, n_kv_heads=arch.n_kv_heads,
                          meta={"method": "attention_mass", "rows": "last", "target": mass_target})


def _prepare(tok: Any, ex: Any, enc: EncodedExample, null: str, bos: bool, n_bos: int) -> tuple:
    """``(real, null encoding, real rows [1, n], null rows [1, m], first query token, document token
    spans, gold document indices)`` of one example."""
    where = f"query_focus: example {enc.index} (task {ex.task!r})"
    r = regions(ex)
    null_ex = type(ex)(prompt=null_prompt(ex, null), answer=ex.answer, needles=ex.needles, task=ex.task,
                       variant=ex.variant, answer_spans=ex.answer_spans)
    nul = encode_example(tok, null_ex, with_answer=False, prepend_bos=bos, index=enc.index)
    rows = _query_rows(tok, ex.prompt, r.query[0], enc.prompt_len, n_bos, where)
    null_rows = _query_rows(tok, null_ex.prompt, r.query[0], nul.prompt_len, n_bos, where + " (null prompt)")
    start = int(rows[0].nonzero().min())
    if int(null_rows[0].nonzero().min()) != start or nul.tokens[:start] != enc.tokens[:start]:
        raise ValueError(f"{where}: the null prompt tokenizes the text before the question differently")
    docs = []
    for k, span in enumerate(r.documents):
        m = token_mask(tok, ex.prompt, [span], n_tokens=enc.prompt_len, n_bos=n_bos, what=f"{where}, document {k}")
        idx = m.nonzero().flatten()
        docs.append((int(idx.min()), int(idx.max()) + 1))
    return enc, nul, rows, null_rows, start, docs, r.gold
