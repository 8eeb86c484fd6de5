"""The one place that knows TransformerLens model types and hook names.

Everything in rhlens that touches a model's internals goes through this module (and its sibling
modules in :mod:`rhlens.adapter`). Two model types are supported:

- ``HookedTransformer`` (TransformerLens 3; deprecated upstream, still what most users build on);
- ``TransformerBridge`` (TransformerLens 4's class, available in 3.9).

Both expose the same hook names for the pieces analyzers use (``blocks.{L}.attn.hook_pattern``,
``hook_z``, ``hook_rot_q`` ...); rhlens code asks for them by *kind* with :func:`hook_name`, so a
rename upstream is a one-line change here.

>>> from rhlens.adapter import hook_name
>>> hook_name("pattern", 3)
'blocks.3.attn.hook_pattern'
"""

import contextlib
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Iterator, Literal, Sequence, Union

import torch
from torch import nn

# TransformerLens 3.9 warns "HookedTransformer is deprecated" when one is built; rhlens's builders
# silence it around their own construction, not for the whole process.
from transformer_lens.hook_points import HookPoint
from transformer_lens.model_bridge import TransformerBridge  # TransformerLens >= 3.9

from rhlens.adapter.bridge_hooks import bridge_hooks

try:  # TransformerLens 3.x: HookedTransformer is the native model class
    from transformer_lens import HookedTransformer, HookedTransformerConfig  # noqa: F401  (re-exported)

    TL_MAJOR = 3
except ImportError:  # TransformerLens 4 removed HookedTransformer: every rhlens model is a TransformerBridge
    TL_MAJOR = 4

    class HookedTransformer(nn.Module):  # type: ignore[no-redef]
        """Stand-in for the class TransformerLens 4 removed: no instance exists, so ``isinstance`` is False."""

    class HookedTransformerConfig:  # type: ignore[no-redef]
        """Stand-in for the config class TransformerLens 4 removed (never built; see :mod:`rhlens.adapter.native`)."""

#: The model class rhlens builds and loads its own models as: ``"hooked"`` on TransformerLens 3.x,
#: ``"bridge"`` on 4.x (where ``HookedTransformer`` no longer exists).
NATIVE_KIND = "hooked" if TL_MAJOR == 3 else "bridge"

ModelKind = Literal["hooked", "bridge"]

#: What rhlens's analyzers accept: a ``HookedTransformer`` or a ``TransformerBridge``.
Model = Union[HookedTransformer, TransformerBridge]

# Hook name templates by kind. ``{layer}`` is filled in by :func:`hook_name`.
_HOOKS: dict[str, str] = {
    "embed": "hook_embed",
    "resid_pre": "blocks.{layer}.hook_resid_pre",
    "resid_mid": "blocks.{layer}.hook_resid_mid",
    "resid_post": "blocks.{layer}.hook_resid_post",
    "attn_out": "blocks.{layer}.hook_attn_out",
    "mlp_out": "blocks.{layer}.hook_mlp_out",
    "q": "blocks.{layer}.attn.hook_q",  # [batch, pos, head, d_head]
    "k": "blocks.{layer}.attn.hook_k",  # [batch, pos, kv_head, d_head]
    "v": "blocks.{layer}.attn.hook_v",  # [batch, pos, kv_head, d_head]
    "rot_q": "blocks.{layer}.attn.hook_rot_q",  # after rotary
    "rot_k": "blocks.{layer}.attn.hook_rot_k",
    "attn_scores": "blocks.{layer}.attn.hook_attn_scores",  # [batch, head, q_pos, k_pos], pre-softmax, masked
    "pattern": "blocks.{layer}.attn.hook_pattern",  # [batch, head, q_pos, k_pos]
    "z": "blocks.{layer}.attn.hook_z",  # [batch, pos, head, d_head], before W_O
    "result": "blocks.{layer}.attn.hook_result",  # per-head output after W_O (needs use_attn_result)
}
HOOK_KINDS: tuple[str, ...] = tuple(_HOOKS)


class UnsupportedModelError(TypeError):
    """The object is not a model type or architecture rhlens supports."""


def hook_name(kind: str, layer: int | None = None) -> str:
    """The TransformerLens hook name of ``kind`` (see :data:`HOOK_KINDS`) at ``layer``."""
    try:
        template = _HOOKS[kind]
    except KeyError:
        raise ValueError(f"Unknown hook kind {kind!r}; known kinds: {', '.join(HOOK_KINDS)}") from None
    if "{layer}" in template:
        if layer is None:
            raise ValueError(f"Hook kind {kind!r} needs a layer")
        return template.format(layer=layer)
    return template


def hook_layer(name: str) -> int:
    """The layer index in a block hook name: ``hook_layer('blocks.3.attn.hook_z') == 3``."""
    parts = name.split(".")
    if len(parts) < 2 or parts[0] != "blocks":
        raise ValueError(f"{name!r} is not a per-layer hook name")
    return int(parts[1])


def model_kind(model: Any) -> ModelKind:
    """``"hooked"`` for a HookedTransformer, ``"bridge"`` for a TransformerBridge; else an error."""
    if isinstance(model, HookedTransformer):
        return "hooked"
    if isinstance(model, TransformerBridge):
        return "bridge"
    raise UnsupportedModelError(
        f"rhlens works on transformer_lens.HookedTransformer or TransformerBridge models, got "
        f"{type(model).__module__}.{type(model).__name__}. Load Hugging Face folders with "
        f"rhlens.load_hf_checkpoint(path) or wrap them with TransformerBridge.boot_transformers."
    )


@dataclass(frozen=True)
class Architecture:
    """The shape facts analyzers and patching compare between models."""

    kind: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_model: int
    d_vocab: int
    n_ctx: int
    positional_embedding_type: str
    normalization_type: str | None
    act_fn: str | None
    gated_mlp: bool

    @property
    def group_size(self) -> int:
        """Query heads per key/value head (1 without GQA)."""
        return self.n_heads // self.n_kv_heads

    def differences(self, other: "Architecture", *, ignore: Sequence[str] = ("kind",)) -> list[str]:
        """Human-readable ``field: a != b`` lines for every field that differs."""
        out = []
        for f in fields(self):
            if f.name in ignore:
                continue
            a, b = getattr(self, f.name), getattr(other, f.name)
            if a != b:
                out.append(f"{f.name}: {a!r} != {b!r}")
        return out

    def to_dict(self) -> dict:
        return asdict(self)


def architecture(model: Any) -> Architecture:
    """Read :class:`Architecture` off a supported model.

    Raises :class:`UnsupportedModelError` for other objects, and for configurations rhlens's
    analyzers cannot handle (no attention heads, a key/value head count that does not divide the
    query heads).
    """
    kind = model_kind(model)
    cfg = model.cfg
    n_heads = int(cfg.n_heads)
    n_kv = getattr(cfg, "n_key_value_heads", None) or n_heads
    if n_heads <= 0 or n_heads % n_kv:
        raise UnsupportedModelError(f"n_heads={n_heads} is not a positive multiple of n_key_value_heads={n_kv}")
    return Architecture(
        kind=kind,
        n_layers=int(cfg.n_layers),
        n_heads=n_heads,
        n_kv_heads=int(n_kv),
        d_head=int(cfg.d_head),
        d_model=int(cfg.d_model),
        d_vocab=int(cfg.d_vocab),
        n_ctx=int(cfg.n_ctx),
        positional_embedding_type=str(getattr(cfg, "positional_embedding_type", "standard")),
        normalization_type=getattr(cfg, "normalization_type", None),
        act_fn=getattr(cfg, "act_fn", None),
        gated_mlp=bool(getattr(cfg, "gated_mlp", False)),
    )


# Attribute set by rhlens's loaders to record how weights were processed at load time.
WEIGHT_PROCESSING_ATTR = "_rhlens_weight_processing"
# A bridge rhlens built (rhlens.adapter.native) holds the HookedTransformerConfig-style fields it was built from here.
CONFIG_ATTR = "_rhlens_config"


def weight_processing(model: Any) -> dict[str, Any]:
    """How the model's weights were processed (folded LayerNorm, centering ...).

    Patching activations between models is only meaningful when both were processed the same way.
    Loaders in :mod:`rhlens.models` record their flags on the model; otherwise they are inferred
    from the config (``LNPre``/``RMSPre`` normalisation means LayerNorm weights were folded), for a
    HookedTransformer and for a bridge rhlens built from such a config (:mod:`rhlens.adapter.native`)
    alike. Any other bridge reports its own state (``compatibility_mode``, ``weights_processed``),
    and so does one whose weights TransformerLens processed without a record.
    """
    recorded = getattr(model, WEIGHT_PROCESSING_ATTR, None)
    if recorded is not None:
        return dict(recorded)
    kind = model_kind(model)
    if kind == "bridge" and (getattr(model, CONFIG_ATTR, None) is None or getattr(model, "_weights_processed", False)):
        return {
            "compatibility_mode": bool(getattr(model, "compatibility_mode", False)),
            "weights_processed": bool(getattr(model, "_weights_processed", False)),
        }
    norm = getattr(model.cfg, "normalization_type", None)
    return {"fold_ln": norm in ("LNPre", "RMSPre")}


def record_weight_processing(model: Model, **flags: Any) -> None:
    """Record the weight-processing flags a loader applied (read by :func:`weight_processing`)."""
    setattr(model, WEIGHT_PROCESSING_ATTR, dict(flags))


def tokenizer_of(model: Model) -> Any:
    """The model's Hugging Face tokenizer, or an error saying how to attach one."""
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        raise ValueError(
            "The model has no tokenizer. Attach one with model.set_tokenizer(tok) (HookedTransformer) "
            "or build the model with rhlens.tiny_llama(tokenizer=...)."
        )
    return tok


def prepends_bos(model: Model) -> bool:
    """Whether rhlens should put a BOS token in front of prompts for this model."""
    return bool(getattr(model.cfg, "default_prepend_bos", True))


def blocks(model: Model) -> nn.ModuleList:
    """The model's transformer blocks (``model.blocks`` in both model types)."""
    return model.blocks


def attention_module(model: Model, layer: int) -> nn.Module:
    """The attention component of block ``layer``."""
    return model.blocks[layer].attn


@contextlib.contextmanager
def hooks(
    model: Any,
    fwd_hooks: Sequence[tuple[str | Callable[[str], bool], Callable]] = (),
    bwd_hooks: Sequence[tuple[str | Callable[[str], bool], Callable]] = (),
) -> Iterator[Any]:
    """Add forward/backward hooks for the duration of a ``with`` block.

    The hooks are removed on exit, also when the body raises. Hook functions take
    ``(tensor, hook)`` and return ``None`` or a replacement tensor, as in TransformerLens.
    """
    if model_kind(model) == "bridge":
        with bridge_hooks(model, fwd_hooks, bwd_hooks):
            yield model
        return
    with model.hooks(fwd_hooks=list(fwd_hooks), bwd_hooks=list(bwd_hooks), reset_hooks_end=True):
        yield model


def count_hooks(model: Model) -> int:
    """Number of user hooks (forward and backward) attached to the model's hook points.

    Only TransformerLens ``HookPoint`` modules are counted: a ``TransformerBridge`` keeps a few
    permanent internal hooks on other modules, which are not the user's.
    """
    total = 0
    for module in model.modules():
        if isinstance(module, HookPoint):
            total += len(module._forward_hooks) + len(module._forward_pre_hooks) + len(module._backward_hooks)
    return total


@contextlib.contextmanager
def analysis_mode(model: Any) -> Iterator[Any]:
    """``eval()`` mode and ``torch.inference_mode()`` inside; the previous training flag after."""
    was_training = model.training
    if was_training:  # eval()/train() walk every module (~1,900 on a small bridge): only when the flag changes
        model.eval()
    try:
        with torch.inference_mode():
            yield model
    finally:
        if was_training:
            model.train(True)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter."""
    return next(model.parameters()).device
