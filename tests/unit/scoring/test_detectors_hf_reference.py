"""attention_mass and query_focus against independent Hugging Face eager-attention references
(:mod:`tests.references.hf_detectors`: unbatched full forwards, spans found from the prompt text,
no rhlens code), to 1e-6: on a tiny random ``LlamaForCausalLM`` (GQA, byte-fallback tokenizer)
batched and chunked, as a HookedTransformer and as a TransformerBridge, and behind the realdata marker on stories260K."""

import pytest

from rhlens.models import load_hf_checkpoint
from rhlens.scoring.detectors import attention_mass, query_focus
from rhlens.scoring.detectors.query_focus import query_focus_and_mass
from rhlens.tasks.example import Example
from tests.references.hf_detectors import hf_attention_mass, hf_query_focus
from tests.references.tokenizers import stories260k
from tests.unit.scoring.test_scoring_hf_reference import pair  # noqa: F401  (the fixture)

DOCS = [
    ("Lily had a big red ball.", "What did Lily have?", "a big red ball"),
    ("Tom and his dog Max liked to play in the garden.", "Who liked to play?", "Tom"),
    ("Tim loved to eat fish.", "What did Tim love?", "fish"),
    ("The sky is blue and the sun is warm.", "What color is the sky?", "blue"),
]


def doc_examples() -> list[Example]:
    """Two to four documents each, gold document rotating; questions and answers from ``DOCS``."""
    out = []
    for k in range(len(DOCS)):
        docs = [DOCS[(k + j) % len(DOCS)] for j in range(2 + k % 3)]
        gold = k % len(docs)
        lines, spans, pos = [], [], 0
        for i, (text, _, _) in enumerate(docs):
            line = f"Document [{i + 1}] {text}"
            spans.append((pos, pos + len(line)))
            lines.append(line)
            pos += len(line) + 1
        body = "\n".join(lines)
        _, question, answer = docs[gold]
        prompt = f"{body}\n\nQuestion: {question}\nAnswer:"
        a = prompt.index(answer, spans[gold][0])
        out.append(Example(prompt=prompt, answer=answer, needles=(spans[gold],), task="mdqa", variant="real",
                           answer_spans=((a, a + len(answer)),), meta={"doc_spans": [list(s) for s in spans]}))
    return out


def check(hf, tok, model, exs, **kw):
    for rows in ("last", "answer"):
        for target in ("needle", "answer"):
            ref = hf_attention_mass(hf, tok, exs, rows=rows, target=target)
            got = attention_mass(model, exs, rows=rows, target=target, progress=False, **kw)
            assert ref.abs().sum() > 0
            assert (got.per_example - ref).abs().max() <= 1e-6, (rows, target)
    ref = hf_query_focus(hf, tok, exs)
    got = query_focus(model, exs, progress=False, **kw)
    assert ref.abs().sum() > 0
    assert (got.per_example - ref).abs().max() <= 1e-6
    # both from one run (what compare_detectors does when it is asked for both)
    qr, mass = query_focus_and_mass(model, exs, progress=False, **kw)
    assert (qr.per_example - ref).abs().max() <= 1e-6
    assert (mass.per_example - hf_attention_mass(hf, tok, exs)).abs().max() <= 1e-6


def test_tiny_llama_equals_hf_reference(pair):  # noqa: F811
    hf, tok, model = pair
    check(hf, tok, model, doc_examples(), batch_size=3, chunk_size=8)


def test_tiny_llama_bridge_equals_hf_reference(pair):  # noqa: F811
    from rhlens.models import as_bridge

    hf, tok, model = pair
    check(hf, tok, as_bridge(model), doc_examples()[:2], batch_size=2, chunk_size=8)


@pytest.mark.realdata
def test_stories260k_equals_hf_reference(realdata):
    from transformers import LlamaForCausalLM

    path, tok = stories260k(realdata)
    hf = LlamaForCausalLM.from_pretrained(str(path), attn_implementation="eager").eval()
    check(hf, tok, load_hf_checkpoint(path), doc_examples(), batch_size=2, chunk_size=16)
