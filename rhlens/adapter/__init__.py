"""The adapter: the only place in rhlens that spells TransformerLens hook names and model types.

Submodules, one job each:

- :mod:`rhlens.adapter.core`: model kinds, architecture facts, hook names, hook/eval context managers.
- :mod:`rhlens.adapter.cache`: key/value caches for chunked prefill and decoding; :func:`forward`.
- :mod:`rhlens.adapter.prefill`: :func:`prefill`, filling a cache without the logits.
- :mod:`rhlens.adapter.causal_sdpa`: the SDPA calls of the fused path (causal kernel, query blocks).
- :mod:`rhlens.adapter.fused`: the fused (SDPA) attention path used while no hook needs patterns,
  and the attention edits that run on it (blocked edges, uniform attention).
- :mod:`rhlens.adapter.bridge_fused`: that path in a TransformerBridge's attention layers.
- :mod:`rhlens.adapter.bridge_layers`: a bridge's blocks from a layer on (``forward_from_layer``).
- :mod:`rhlens.adapter.fused_edges`: what both share: hooks that force the eager path, blocked edges.
- :mod:`rhlens.adapter.rotary`: rotary tables and context length (context extension).
- :mod:`rhlens.adapter.weights`: attention modules, per-head weights, final norm and unembedding,
  the forward from a layer to the final residual.
- :mod:`rhlens.adapter.convert`: Hugging Face <-> TransformerLens state-dict layouts.
- :mod:`rhlens.adapter.checkpoint`: a loaded Hugging Face checkpoint as this TransformerLens's model class,
  its config overrides and load-time weight processing.
- :mod:`rhlens.adapter.bridge_softmax`: a bridge's attention softmax at its scores' precision.
"""

from rhlens.adapter.cache import enable_bridge_kv_cache, forward, new_kv_cache
from rhlens.adapter.core import (
    HOOK_KINDS,
    Architecture,
    HookedTransformer,
    HookedTransformerConfig,
    Model,
    UnsupportedModelError,
    analysis_mode,
    architecture,
    count_hooks,
    hook_layer,
    hook_name,
    hooks,
    model_device,
    model_kind,
    prepends_bos,
    record_weight_processing,
    tokenizer_of,
    weight_processing,
)
from rhlens.adapter.prefill import prefill
from rhlens.adapter.fused import blocked_edges, uniform_attention_hooks
from rhlens.adapter.weights import (
    attention_modules,
    attention_weight_name,
    embedding_matrix,
    final_residual,
    forward_from_layer,
    forward_from_layer_unsupported,
    head_output_weight,
    is_attention_parameter,
    logits_from_residual,
    set_unembed,
)

__all__ = [
    "HOOK_KINDS",
    "enable_bridge_kv_cache",
    "new_kv_cache",
    "prefill",
    "Architecture",
    "HookedTransformer",
    "HookedTransformerConfig",
    "Model",
    "UnsupportedModelError",
    "analysis_mode",
    "architecture",
    "count_hooks",
    "forward",
    "hook_layer",
    "hook_name",
    "hooks",
    "model_device",
    "model_kind",
    "prepends_bos",
    "record_weight_processing",
    "tokenizer_of",
    "weight_processing",
    "blocked_edges",
    "uniform_attention_hooks",
    "attention_modules",
    "attention_weight_name",
    "embedding_matrix",
    "final_residual",
    "forward_from_layer",
    "forward_from_layer_unsupported",
    "head_output_weight",
    "is_attention_parameter",
    "logits_from_residual",
    "set_unembed",
]
