"""May two models be patched into each other? Same shape, same vocabulary, same weight processing.

Patching writes the source's per-head ``hook_z`` ``[batch, pos, head, d_head]`` into the target.
That is meaningful only when both models index heads, positions and tokens the same way and
their activations live in the same basis, so :func:`check_compatible` compares:

- architecture: layers, query heads, key/value heads, head size, width, vocabulary size, context,
  positional embedding, normalisation, activation, gated MLP (:func:`rhlens.adapter.architecture`);
- the tokenizer's vocabulary (token -> id), and its BOS/EOS/pad ids;
- what the weight processing (:func:`rhlens.adapter.weight_processing`) does to ``hook_z``.

Weight processing is compared by its effect on the patched activation, not by how a loader
spelled its record. Folding LayerNorm (``LN``/``RMS`` -> ``LNPre``/``RMSPre``), centring the writing
weights and centring the unembedding change the residual stream, the norms' inputs and the logits
but leave every head's ``hook_z`` unchanged (measured: ``< 1e-7`` on GPT-2 and Llama checkpoints), so
a HookedTransformer loaded with any of them patches into a TransformerBridge of the same checkpoint
(which records no flags) and back. Folding value biases (``hook_z`` loses ``b_V``) and refactoring
the factored attention matrices (``hook_z`` changes basis) do change it; a bridge whose weights were
processed without a record counts as unknown there and is refused.

Every difference is listed in one error (example: :func:`check_compatible`).
"""

from typing import Any

from rhlens.adapter import Model, architecture, weight_processing

# Processing flags that change hook_z; every other known flag leaves it unchanged.
_Z_CHANGING = ("fold_value_biases", "refactor_factored_attn_matrices")
_Z_PRESERVING = ("fold_ln", "center_writing_weights", "center_unembed")
_BRIDGE_STATE = ("compatibility_mode", "weights_processed")  # inferred for bridges without a record
UNKNOWN = "unknown (weights processed without a record; see rhlens.adapter.record_weight_processing)"


class IncompatibleModelsError(ValueError):
    """Source and target models differ in a way that makes patching meaningless.

    A ``ValueError``; :func:`check_compatible` and every patching analyzer raise it with one line
    per difference.

    >>> from rhlens.models import tiny_llama, word_level_tokenizer
    >>> try:
    ...     check_compatible(tiny_llama(tokenizer=word_level_tokenizer(["a b c"])),
    ...                      tiny_llama(tokenizer=word_level_tokenizer(["a b c d"])))
    ... except IncompatibleModelsError as err:
    ...     print(isinstance(err, ValueError), str(err).splitlines()[1])
    True   - d_vocab: 7 != 8
    """


def _vocab_differences(source: Model, target: Model) -> list[str]:
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


def processing_effects(model: Model) -> dict[str, Any]:
    """What the model's weight processing does to ``hook_z``: the flags that change it.

    >>> from rhlens.models import tiny_llama
    >>> from rhlens.adapter import record_weight_processing
    >>> model = tiny_llama()
    >>> record_weight_processing(model, fold_ln=True, center_writing_weights=True)
    >>> processing_effects(model)
    {'fold_value_biases': False, 'refactor_factored_attn_matrices': False}
    """
    raw = weight_processing(model)
    if set(raw) <= set(_BRIDGE_STATE) and "weights_processed" in raw:  # a bridge without a record
        return {k: (UNKNOWN if raw["weights_processed"] else False) for k in _Z_CHANGING}
    out: dict[str, Any] = {k: bool(raw.get(k, False)) for k in _Z_CHANGING}
    for key in sorted(set(raw) - set(_Z_CHANGING) - set(_Z_PRESERVING) - set(_BRIDGE_STATE)):
        out[key] = raw[key]  # a flag rhlens does not know: compared as it is
    return out


def _processing_differences(source: Model, target: Model) -> list[str]:
    s, t = processing_effects(source), processing_effects(target)
    out = []
    for key in sorted(set(s) | set(t)):
        a, b = s.get(key, "<unset>"), t.get(key, "<unset>")
        if a != b or a == UNKNOWN:
            out.append(f"weight processing {key}: {a!r} != {b!r}")
    return out


def _norm_family(model: Model) -> str | None:
    """``LN``/``RMS`` with folded weights (``LNPre``/``RMSPre``) count as their unfolded family."""
    norm = architecture(model).normalization_type
    return norm.removesuffix("Pre") if isinstance(norm, str) else norm


def model_differences(source: Model, target: Model) -> list[str]:
    """Every difference that blocks patching, as ``"what: source != target"`` lines."""
    arch = architecture(source).differences(architecture(target), ignore=("kind", "normalization_type"))
    a, b = _norm_family(source), _norm_family(target)
    if a != b:
        arch.append(f"normalization_type: {architecture(source).normalization_type!r} != {architecture(target).normalization_type!r}")
    return arch + _vocab_differences(source, target) + _processing_differences(source, target)


def check_compatible(source: Model, target: Model) -> None:
    """Raise :class:`IncompatibleModelsError` listing every difference, or return ``None``.

    Model kinds may differ (a HookedTransformer and a TransformerBridge of the same shape patch fine).

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
    diffs = model_differences(source, target)
    if diffs:
        raise IncompatibleModelsError(
            "Cannot patch between these models; they differ in:\n" + "\n".join(f"  - {d}" for d in diffs)
        )
