"""May two models be patched into each other? Same shape, same vocabulary, same weight processing.

Patching writes the source's per-head ``hook_z`` ``[batch, pos, head, d_head]`` into the target.
That is meaningful only when both models index heads, positions and tokens the same way and
their activations live in the same basis, so :func:`check_compatible` compares:

- architecture: layers, query heads, key/value heads, head size, width, vocabulary size, context,
  positional embedding, normalisation, activation, gated MLP (:func:`rhlens.adapter.architecture`);
- the tokenizer's vocabulary (token -> id), and its BOS/EOS/pad ids;
- weight-processing flags (:func:`rhlens.adapter.weight_processing`: folded LayerNorm, centring ...).

Every difference is listed in one error.

>>> from rhlens.models import tiny_llama, word_level_tokenizer
>>> tok = word_level_tokenizer(["a b c"])
>>> check_compatible(tiny_llama(tokenizer=tok, seed=0), tiny_llama(tokenizer=tok, seed=1))
>>> try:
...     check_compatible(tiny_llama(tokenizer=tok), tiny_llama(tokenizer=tok, n_layers=3, n_heads=2))
... except IncompatibleModelsError as err:
...     print(err)
Cannot patch between these models; they differ in:
  - n_layers: 2 != 3
  - n_heads: 4 != 2
  - n_kv_heads: 4 != 2
"""

from typing import Any

from rhlens.adapter import architecture, weight_processing


class IncompatibleModelsError(ValueError):
    """Source and target models differ in a way that makes patching meaningless."""


def _vocab_differences(source: Any, target: Any) -> list[str]:
    s_tok, t_tok = getattr(source, "tokenizer", None), getattr(target, "tokenizer", None)
    if s_tok is None or t_tok is None:
        missing = [name for name, t in (("source", s_tok), ("target", t_tok)) if t is None]
        return [f"tokenizer: {' and '.join(missing)} has none (attach one with model.set_tokenizer(tok))"]
    out = []
    s_vocab, t_vocab = s_tok.get_vocab(), t_tok.get_vocab()
    if s_vocab != t_vocab:
        only_s = sorted(set(s_vocab) - set(t_vocab))
        only_t = sorted(set(t_vocab) - set(s_vocab))
        moved = sorted(k for k in set(s_vocab) & set(t_vocab) if s_vocab[k] != t_vocab[k])
        parts = [f"{len(s_vocab)} vs {len(t_vocab)} tokens"]
        if only_s:
            parts.append(f"{len(only_s)} only in source (e.g. {only_s[:3]})")
        if only_t:
            parts.append(f"{len(only_t)} only in target (e.g. {only_t[:3]})")
        if moved:
            parts.append(f"{len(moved)} with different ids (e.g. {moved[:3]})")
        out.append("tokenizer vocabulary: " + "; ".join(parts))
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        a, b = getattr(s_tok, name, None), getattr(t_tok, name, None)
        if a != b:
            out.append(f"tokenizer {name}: {a!r} != {b!r}")
    return out


def _processing_differences(source: Any, target: Any) -> list[str]:
    s, t = weight_processing(source), weight_processing(target)
    out = []
    for key in sorted(set(s) | set(t)):
        a, b = s.get(key, "<unset>"), t.get(key, "<unset>")
        if a != b:
            out.append(f"weight processing {key}: {a!r} != {b!r}")
    return out


def model_differences(source: Any, target: Any) -> list[str]:
    """Every difference that blocks patching, as ``"what: source != target"`` lines."""
    return (
        architecture(source).differences(architecture(target))
        + _vocab_differences(source, target)
        + _processing_differences(source, target)
    )


def check_compatible(source: Any, target: Any) -> None:
    """Raise :class:`IncompatibleModelsError` listing every difference, or return ``None``.

    Model kinds may differ (a HookedTransformer and a TransformerBridge of the same shape patch fine).
    """
    diffs = model_differences(source, target)
    if diffs:
        raise IncompatibleModelsError(
            "Cannot patch between these models; they differ in:\n" + "\n".join(f"  - {d}" for d in diffs)
        )
