"""Where a model keeps its weights: attention modules, per-head matrices, the final norm and unembedding.

The rest of rhlens asks these functions instead of walking ``model.blocks[L].attn.W_Q`` or calling
``model.unembed`` itself, so a change of TransformerLens's module layout is a change here only.

TransformerLens layouts (``HookedTransformer``):

- ``W_Q`` ``[head, d_model, d_head]``; ``W_K``/``W_V`` the same, or ``_W_K``/``_W_V``
  ``[kv_head, d_model, d_head]`` under grouped-query attention; ``W_O`` ``[head, d_head, d_model]``.
- ``unembed.W_U`` ``[d_model, d_vocab]``, ``embed.W_E`` ``[d_vocab, d_model]``.

>>> from rhlens.models import tiny_llama
>>> model = tiny_llama(n_layers=2, n_key_value_heads=2)
>>> [prefix for prefix, _ in attention_modules(model)]
['blocks.0.attn', 'blocks.1.attn']
>>> [slot.name for slot in attention_weight_slots(model, "qk")][:2]  # where a bridge holds them too
['blocks.0.attn.W_Q', 'blocks.0.attn._W_K']
>>> head_output_weight(model, 1, 3).shape  # [d_head, d_model]
torch.Size([16, 64])
"""

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn
from torch.nn.utils import parametrize

from rhlens.adapter.bridge_layers import bridge_forward_from_layer, bridge_layers_unsupported_reason
from rhlens.adapter.core import Model, attention_module, blocks, hook_name, hooks, model_kind

# target letter -> (parameter names tried in order, layout). "in": the weight maps d_model to
# (head, d_head) (Q/K/V); "out": it maps (head, d_head) to d_model (O).
ATTENTION_WEIGHT_LAYOUTS: dict[str, tuple[tuple[str, ...], str]] = {
    "q": (("W_Q",), "in"),
    "k": (("_W_K", "W_K"), "in"),
    "v": (("_W_V", "W_V"), "in"),
    "o": (("W_O",), "out"),
}


def attention_modules(model: Model) -> Iterator[tuple[str, nn.Module]]:
    """``(state-dict prefix, attention module)`` for every layer, in order."""
    for layer in range(len(blocks(model))):
        yield f"blocks.{layer}.attn", attention_module(model, layer)


def attention_weight_name(attn: nn.Module, letter: str) -> str:
    """The TransformerLens name of weight ``letter`` (``"q"``, ``"k"``, ``"v"``, ``"o"``) of ``attn``.

    On a HookedTransformer it is the attribute holding it: grouped-query models keep keys and
    values in ``_W_K``/``_W_V``; a LoRA-parametrized weight still counts. On a bridge it is the name
    the Hugging Face weight (``attn.<letter>.original_component.weight``) has in TransformerLens
    form (:func:`rhlens.adapter.native.model_state`), by the same rule. Raises ``ValueError`` for an
    unknown letter or a module without that weight.
    """
    if letter not in ATTENTION_WEIGHT_LAYOUTS:
        raise ValueError(f"unknown attention weight {letter!r}; known: {', '.join(ATTENTION_WEIGHT_LAYOUTS)}")
    names, _ = ATTENTION_WEIGHT_LAYOUTS[letter]
    if _bridge_linear(attn, letter) is not None:
        grouped = getattr(getattr(attn, "config", None), "n_key_value_heads", None) is not None
        return names[0] if grouped or len(names) == 1 else names[1]
    for name in names:
        if isinstance(attn._parameters.get(name), nn.Parameter) or parametrize.is_parametrized(attn, name):
            return name
    raise ValueError(f"attention module {type(attn).__name__} has no parameter {' or '.join(names)} for target {letter!r}")


def _bridge_linear(attn: nn.Module, letter: str) -> nn.Module | None:
    """A bridge attention module's Hugging Face projection ``letter`` (``nn.Linear``, or GPT-2's
    ``Conv1D`` output projection); ``None`` for a HookedTransformer's attention."""
    return getattr(getattr(attn, letter, None), "original_component", None)


@dataclass(frozen=True)
class WeightSlot:
    """Where attention weight ``letter`` of one layer lives, and its layout.

    ``module.<attr>`` is the parameter to adapt (a HookedTransformer's per-head ``W_Q`` ...; a
    bridge's Hugging Face ``q_proj.weight``, or GPT-2's ``Conv1D`` ``c_proj.weight``). ``layout``
    says how the linear map ``in_dim -> out_dim`` it implements is stored (:func:`flat_to_weight`);
    ``name`` is its TransformerLens name (``blocks.0.attn._W_K``) on either model class.
    """

    name: str
    module: nn.Module
    attr: str
    layout: str
    shape: tuple[int, ...]

    @property
    def dims(self) -> tuple[int, int]:
        """``(in_dim, out_dim)`` of the map the weight implements."""
        s = self.shape
        if self.layout in ("in", "out"):  # [head, d_model, d_head] / [head, d_head, d_model]
            return (s[1], s[0] * s[2]) if self.layout == "in" else (s[0] * s[1], s[2])
        return (s[1], s[0]) if self.layout == "out_in" else (s[0], s[1])


def flat_to_weight(flat: Float[Tensor, "d_in d_out"], layout: str, shape: Sequence[int]) -> Tensor:
    """A flat ``[in, out]`` map in the layout of a weight of ``shape``: per-head ``"in"``
    (``[head, d_model, d_head]``) or ``"out"`` (``[head, d_head, d_model]``), ``nn.Linear``'s
    ``"out_in"`` (``[out, in]``) or ``Conv1D``'s ``"in_out"`` (``[in, out]``)."""
    if layout == "in":
        heads, a, b = shape
        return flat.reshape(a, heads, b).permute(1, 0, 2)
    if layout == "out":
        return flat.reshape(*shape)
    return flat.T if layout == "out_in" else flat


def attention_weight_slots(model: Model, letters: Sequence[str] = ("q", "k", "v", "o")) -> Iterator[WeightSlot]:
    """A :class:`WeightSlot` per layer and letter of ``letters``, layer by layer, in ``letters`` order."""
    for prefix, attn in attention_modules(model):
        for letter in letters:
            attr = attention_weight_name(attn, letter)
            linear = _bridge_linear(attn, letter)  # nn.Linear (Llama, GPT-2's split q/k/v) or Conv1D (GPT-2's c_proj)
            if linear is None:
                yield WeightSlot(f"{prefix}.{attr}", attn, attr, ATTENTION_WEIGHT_LAYOUTS[letter][1], tuple(getattr(attn, attr).shape))
            else:
                layout = "out_in" if isinstance(linear, nn.Linear) else "in_out"
                yield WeightSlot(f"{prefix}.{attr}", linear, "weight", layout, tuple(linear.weight.shape))


def plain_state_dict(module: nn.Module) -> dict[str, Tensor]:
    """``module.state_dict()`` with each parametrized tensor (LoRA) under its own key, at its current
    (adapted) value, in place of the ``parametrizations`` entries: the weights of the merged model."""
    state: dict[str, Tensor] = {}
    for key, value in module.state_dict().items():
        path, sep, rest = key.partition(".parametrizations.")
        if not sep:
            state[key] = value
        elif rest.endswith(".original"):  # the one entry per parametrized tensor, under each path state_dict walks
            attr = rest.removesuffix(".original")
            state[f"{path}.{attr}"] = getattr(module.get_submodule(path), attr).detach()
    return state


def is_attention_parameter(name: str) -> bool:
    """Whether ``model.named_parameters()`` name ``name`` belongs to an attention module."""
    return ".attn." in name or ".self_attn." in name  # a HookedTransformer's / a bridge's Hugging Face Llama


def head_output_weight(model: Model, layer: int, head: int) -> Float[Tensor, "d_head d_model"]:
    """Head ``head``'s output matrix in layer ``layer`` (differentiable, not a copy)."""
    return attention_module(model, layer).W_O[head]


def final_residual(model: Model, tokens: Tensor, **kwargs: Any) -> Float[Tensor, "batch pos d_model"]:
    """The residual stream after the last block (before the final norm): ``model(tokens, **kwargs)``
    stopped before the unembedding, so no ``[batch, pos, d_vocab]`` logits are built.

    A ``TransformerBridge`` runs the whole forward and returns the last block's ``hook_resid_post``
    (its ``stop_at_layer`` stops *before* a block, so it cannot stop after the last one).
    """
    n_layers = int(model.cfg.n_layers)
    if model_kind(model) == "hooked":
        return model(tokens, stop_at_layer=n_layers, **kwargs)
    seen: list[Tensor] = []
    with hooks(model, [(hook_name("resid_post", n_layers - 1), lambda t, hook: seen.append(t))]):
        model(tokens, **kwargs)
    return seen[-1]


def forward_from_layer_unsupported(model: Model) -> str | None:
    """Why :func:`forward_from_layer` cannot run on ``model`` (a bridge of an architecture it does not
    walk, :func:`rhlens.adapter.bridge_layers.bridge_layers_unsupported_reason`), or ``None``."""
    return bridge_layers_unsupported_reason(model) if model_kind(model) == "bridge" else None


def forward_from_layer(
    model: Model,
    resid: Float[Tensor, "batch pos d_model"],
    layer: int,
    attention_mask: Int[Tensor, "batch pos"],
    cache: Any = None,
) -> Float[Tensor, "batch pos d_model"]:
    """Blocks ``layer .. n_layers - 1`` on ``resid`` (the residual stream entering block ``layer``);
    returns the final residual (before the final norm), like :func:`final_residual`.

    ``attention_mask`` covers the columns of ``resid``; ``cache`` (a
    :func:`rhlens.adapter.new_kv_cache`, or ``None``) holds the earlier columns and is extended.
    With ``resid`` the ``resid_pre`` activation of ``layer`` it returns what
    ``final_residual(model, tokens, attention_mask=attention_mask)`` returns. A HookedTransformer
    runs ``start_at_layer``; a bridge walks its blocks (:mod:`rhlens.adapter.bridge_layers`).
    """
    if model_kind(model) == "bridge":
        return bridge_forward_from_layer(model, resid, layer, attention_mask, cache)
    full_mask = cache.append_attention_mask(attention_mask) if cache is not None else attention_mask
    return model(resid, start_at_layer=layer, stop_at_layer=int(model.cfg.n_layers), attention_mask=full_mask, past_kv_cache=cache)


def logits_from_residual(model: Model, resid: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_vocab"]:
    """Final norm (when the model has one) and unembedding of a final-residual tensor."""
    if getattr(model.cfg, "normalization_type", None) is not None:
        resid = model.ln_final(resid)
    return model.unembed(resid)


def embedding_matrix(model: Model) -> Float[Tensor, "d_vocab d_model"]:
    """The token embedding ``W_E`` (the parameter itself)."""
    return model.embed.W_E


def set_unembed(model: Model, W_U: Float[Tensor, "d_model d_vocab"]) -> None:
    """Copy ``W_U`` into the model's unembedding in place (no gradient recorded).

    ``set_unembed(model, embedding_matrix(model).T)`` starts the unembedding as the transposed
    embedding (not tied afterwards).
    """
    with torch.no_grad():
        if model_kind(model) == "hooked":
            model.unembed.W_U.copy_(W_U)
        else:  # the bridge's unembedding is the Hugging Face lm_head: weight [d_vocab, d_model]
            model.unembed.original_component.weight.copy_(W_U.T)
