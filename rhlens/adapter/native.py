"""rhlens's own models in the installed TransformerLens's model class.

rhlens describes its models (:func:`rhlens.tiny_llama`, the embedded base, :func:`rhlens.save_model`
folders) by ``HookedTransformerConfig`` fields and TransformerLens-keyed weights. This module builds
them as what the installed TransformerLens has:

- TransformerLens 3.x: a ``HookedTransformer`` (:data:`rhlens.adapter.core.NATIVE_KIND` ``"hooked"``);
- TransformerLens 4.x (no ``HookedTransformer``): a Hugging Face ``LlamaForCausalLM`` /
  ``GPT2LMHeadModel`` with the same weights (:mod:`rhlens.adapter.layout`) under a
  ``TransformerBridge`` (``"bridge"``), booted offline with eager attention.

Llama-shaped configs (rotary, RMSNorm, gated MLP; ``attn_only`` as MLPs of width 0, which add exactly 0) and
GPT-2-shaped ones (learned positions, LayerNorm, plain MLP) convert; anything else is refused naming the config
field (:func:`hf_shape_problems`). An attention-only bridge's ``cfg.d_mlp`` is 0 (its Hugging Face MLP width).

>>> from rhlens.adapter.core import NATIVE_KIND
>>> NATIVE_KIND in ("hooked", "bridge")
True
"""

import math
import os
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from rhlens.adapter import layout
from rhlens.adapter.bridge_softmax import keep_softmax_precision
from rhlens.adapter.cache import enable_bridge_kv_cache
from rhlens.adapter.core import CONFIG_ATTR, NATIVE_KIND, HookedTransformer, HookedTransformerConfig, TransformerBridge, model_kind
from rhlens.adapter.weights import plain_state_dict

__all__ = [
    "StateMismatchError", "boot_bridge", "bridge_from_hf", "complete_config", "config_field_names",
    "hf_model_from_config", "hf_shape_problems", "hooked_init_state", "model_config", "model_from_state",
    "model_state", "set_model_state", "new_model",
]

# HookedTransformer act_fn -> Hugging Face hidden_act / activation_function (identical functions).
ACT_TO_HF = {"silu": "silu", "gelu": "gelu", "gelu_new": "gelu_new", "relu": "relu", "gelu_pytorch_tanh": "gelu_pytorch_tanh"}
# HookedTransformerConfig defaults of the fields the conversion reads (TransformerLens 3.9's values).
_DEFAULTS: dict[str, Any] = dict(
    eps=1e-5, rotary_base=10000, act_fn="relu", normalization_type="LN", positional_embedding_type="standard",
    n_key_value_heads=None, gated_mlp=False, attn_only=False, use_attn_scale=True, rotary_adjacent_pairs=False,
    parallel_attn_mlp=False, use_local_attn=False, post_embedding_ln=False, output_logits_soft_cap=-1.0,
    attn_scores_soft_cap=-1.0, rotary_scaling_factor=1.0, use_NTK_by_parts_rope=False, dtype="float32",
    model_name="custom", default_prepend_bos=True, d_vocab_out=-1, final_rms=False, use_qk_norm=False,
    use_yarn_rope=False, use_dynamic_ntk_rope=False, seed=None,
)


class StateMismatchError(ValueError):
    """Weights that do not fit a config (missing or unexpected keys, wrong shapes)."""


def config_field_names() -> frozenset[str] | None:
    """The config fields this TransformerLens knows (``None`` on 4.x: rhlens keeps them itself)."""
    if NATIVE_KIND == "hooked":
        return frozenset(HookedTransformerConfig.__dataclass_fields__)
    return None


def complete_config(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with the ``HookedTransformerConfig`` defaults and derived values filled in."""
    cfg = {**_DEFAULTS, **{k: v for k, v in fields.items() if v is not None or k not in _DEFAULTS}}
    if cfg.get("n_heads", -1) in (-1, None):
        cfg["n_heads"] = cfg["d_model"] // cfg["d_head"]
    cfg.setdefault("d_head", cfg["d_model"] // cfg["n_heads"])
    if cfg.get("d_mlp") is None:
        cfg["d_mlp"] = 4 * cfg["d_model"]
    if cfg.get("rotary_dim") is None:
        cfg["rotary_dim"] = cfg["d_head"]
    if cfg.get("attn_scale") is None or cfg.get("attn_scale") == -1.0:
        cfg["attn_scale"] = math.sqrt(cfg["d_head"])
    if cfg.get("d_vocab_out") in (None, -1):
        cfg["d_vocab_out"] = cfg["d_vocab"]
    if cfg.get("initializer_range") in (None, -1.0):
        cfg["initializer_range"] = 0.8 / math.sqrt(cfg["d_model"])
    return cfg


def hf_shape_problems(cfg: dict[str, Any]) -> tuple[str, list[str]]:
    """``(family, problems)``: ``"llama"`` or ``"gpt2"``, and each config field that family cannot express."""
    problems: list[str] = []

    def need(cond: bool, text: str) -> None:
        if not cond:
            problems.append(text)

    family = layout.hf_family(cfg)
    if family == "llama":
        need(cfg["normalization_type"] in ("RMS", "RMSPre"), f"normalization_type={cfg['normalization_type']!r} (need 'RMS' or 'RMSPre')")
        need(bool(cfg["gated_mlp"]), "gated_mlp=False (need a gated MLP)")
        need(not cfg["rotary_adjacent_pairs"], "rotary_adjacent_pairs=True (Llama rotates halves, not adjacent pairs)")
        need(cfg["rotary_dim"] == cfg["d_head"], f"rotary_dim={cfg['rotary_dim']} != d_head={cfg['d_head']} (partial rotary)")
        for flag in ("use_qk_norm", "use_yarn_rope", "use_dynamic_ntk_rope"):
            need(not cfg[flag], f"{flag}=True")
        need(float(cfg["rotary_scaling_factor"]) == 1.0, f"rotary_scaling_factor={cfg['rotary_scaling_factor']}")
    else:
        need(cfg["positional_embedding_type"] == "standard", f"positional_embedding_type={cfg['positional_embedding_type']!r} (need 'rotary' or 'standard')")
        need(cfg["normalization_type"] == "LN", f"normalization_type={cfg['normalization_type']!r} (GPT-2 shape needs 'LN')")
        need(not cfg["gated_mlp"], "gated_mlp=True with learned positions")
        need(cfg["n_heads"] * cfg["d_head"] == cfg["d_model"], f"n_heads x d_head = {cfg['n_heads'] * cfg['d_head']} != d_model={cfg['d_model']}")
        need(not cfg["attn_only"], "attn_only=True with learned positions (a GPT-2 MLP of width 0 still adds its bias)")
    need(cfg["act_fn"] in ACT_TO_HF, f"act_fn={cfg['act_fn']!r} (supported: {', '.join(ACT_TO_HF)})")
    need(not cfg["parallel_attn_mlp"], "parallel_attn_mlp=True")
    need(not cfg["use_local_attn"], "use_local_attn=True (sliding-window layers)")
    need(bool(cfg["use_attn_scale"]) and abs(float(cfg["attn_scale"]) - float(cfg["d_head"]) ** 0.5) < 1e-6,
         f"attn_scale={cfg['attn_scale']} (Hugging Face divides scores by sqrt(d_head)={float(cfg['d_head']) ** 0.5:g})")
    need(cfg["d_vocab_out"] == cfg["d_vocab"], f"d_vocab_out={cfg['d_vocab_out']} != d_vocab={cfg['d_vocab']}")
    need(float(cfg["output_logits_soft_cap"]) <= 0 and float(cfg["attn_scores_soft_cap"]) <= 0, "soft-capped logits or attention scores")
    need(not cfg["post_embedding_ln"], "post_embedding_ln=True")
    return family, problems


def _hf_config(cfg: dict[str, Any], family: str, *, attn_bias: bool, mlp_bias: bool, tokenizer: Any) -> Any:
    import transformers

    special = {f"{n}_token_id": getattr(tokenizer, f"{n}_token_id", None) for n in ("bos", "eos", "pad")}
    common: dict[str, Any] = dict(vocab_size=cfg["d_vocab"], tie_word_embeddings=False, attn_implementation="eager",
                                  initializer_range=float(cfg["initializer_range"]), **special)
    if family == "gpt2":
        return transformers.GPT2Config(n_embd=cfg["d_model"], n_head=cfg["n_heads"], n_layer=cfg["n_layers"], n_positions=cfg["n_ctx"],
                                       n_inner=cfg["d_mlp"], activation_function=ACT_TO_HF[cfg["act_fn"]], layer_norm_epsilon=cfg["eps"],
                                       resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **common)
    rope: dict[str, Any] = {"rope_type": "default", "rope_theta": float(cfg["rotary_base"])}
    if cfg["use_NTK_by_parts_rope"]:
        rope = {"rope_type": "llama3", "rope_theta": float(cfg["rotary_base"]), "factor": float(cfg["NTK_by_parts_factor"]),
                "low_freq_factor": float(cfg["NTK_by_parts_low_freq_factor"]), "high_freq_factor": float(cfg["NTK_by_parts_high_freq_factor"]),
                "original_max_position_embeddings": int(cfg["NTK_original_ctx_len"])}
    n_heads, n_kv = cfg["n_heads"], cfg["n_key_value_heads"] or cfg["n_heads"]
    tiles = cfg["d_model"] % n_heads == 0
    if not tiles and not attn_bias and not mlp_bias:  # Mistral (sliding window off) holds this shape and saves it
        return transformers.MistralConfig(
            hidden_size=cfg["d_model"], intermediate_size=0 if cfg["attn_only"] else cfg["d_mlp"], num_hidden_layers=cfg["n_layers"], num_attention_heads=n_heads,
            num_key_value_heads=n_kv, head_dim=cfg["d_head"], hidden_act=ACT_TO_HF[cfg["act_fn"]], max_position_embeddings=cfg["n_ctx"],
            rms_norm_eps=cfg["eps"], rope_parameters=rope, sliding_window=None, **common)
    hf_cfg = transformers.LlamaConfig(
        hidden_size=cfg["d_model"], intermediate_size=0 if cfg["attn_only"] else cfg["d_mlp"], num_hidden_layers=cfg["n_layers"],
        num_attention_heads=n_heads if tiles else 1, num_key_value_heads=n_kv if tiles else 1, head_dim=cfg["d_head"],
        hidden_act=ACT_TO_HF[cfg["act_fn"]], max_position_embeddings=cfg["n_ctx"], rms_norm_eps=cfg["eps"], rope_parameters=rope,
        attention_bias=attn_bias, mlp_bias=mlp_bias, **common,
    )
    if not tiles:
        # LlamaConfig refuses heads that do not tile hidden_size (the embedded base: 12 x 32 on 128),
        # though LlamaForCausalLM computes them (it reads head_dim). Such a config cannot be saved with
        # save_pretrained (transformers validates it again there), only used in memory.
        object.__setattr__(hf_cfg, "num_attention_heads", n_heads)
        object.__setattr__(hf_cfg, "num_key_value_heads", n_kv)
    return hf_cfg


def hf_model_from_config(fields: dict[str, Any], state: dict[str, Tensor] | None = None, *, tokenizer: Any = None) -> Any:
    """A Hugging Face model (eager attention, eval mode) computing what ``fields`` + TransformerLens-keyed
    ``state`` compute; with ``state=None``, the weights a HookedTransformer with ``fields`` starts
    from (:func:`hooked_init_state`, seeded by ``fields["seed"]``).

    Raises ``ValueError`` naming each config field the Hugging Face family cannot express, and
    :class:`StateMismatchError` when ``state`` lacks a tensor or has one of the wrong shape.
    """
    from transformers import GPT2LMHeadModel, LlamaForCausalLM, MistralForCausalLM

    cfg = complete_config(fields)
    family, problems = hf_shape_problems(cfg)
    if problems:
        raise ValueError(
            "rhlens converts Llama-shaped (rotary, RMSNorm, gated MLP) and GPT-2-shaped (learned positions, LayerNorm) "
            f"models to Hugging Face models; this config has: {'; '.join(problems)}. Boot the original Hugging Face "
            "folder directly with rhlens.models.load_bridge(path)."
        )
    if state is None:
        state = hooked_init_state(cfg)
    dtype = _torch_dtype(cfg["dtype"])  # convert at the model's dtype (a bfloat16 file's b_in fold would round to bfloat16)
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    hf_state = None
    if state is not None:
        ns = _Namespace(cfg)
        try:
            hf_state = (layout.llama_to_hf if family == "llama" else layout.gpt2_to_hf)(state, ns)
        except KeyError as exc:
            raise StateMismatchError(f"the weights have no tensor {exc.args[0]!r}") from None
    attn_bias = hf_state is not None and any(k.endswith("self_attn.q_proj.bias") for k in hf_state)
    mlp_bias = hf_state is not None and any(k.endswith("mlp.down_proj.bias") for k in hf_state)
    hf_cfg = _hf_config(cfg, family, attn_bias=attn_bias, mlp_bias=mlp_bias, tokenizer=tokenizer)
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():  # the Hugging Face init's draws are overwritten: keep them off the global RNG
        warnings.filterwarnings("ignore", "Initializing zero-element tensors")  # an attention-only model's MLPs of width 0
        model_class = {"llama": LlamaForCausalLM, "mistral": MistralForCausalLM, "gpt2": GPT2LMHeadModel}[hf_cfg.model_type]
        hf = model_class(hf_cfg)
    if hf_state is not None and "lm_head.bias" in hf_state:
        hf.lm_head = nn.Linear(cfg["d_model"], cfg["d_vocab"], bias=True)
    hf = hf.to(dtype)
    if hf_state is not None:
        try:
            hf.load_state_dict(hf_state, strict=True)
        except RuntimeError as exc:
            raise StateMismatchError(str(exc).split("\n\t", 1)[-1][:400]) from None
    if mlp_bias:
        # TransformerLens's gated MLP has no bias inside act(gate) * up, but Hugging Face's
        # mlp_bias=True makes one on up_proj and gate_proj too (zero here). Remove those two, so
        # training cannot move them and the model still converts back exactly (save_model).
        for layer in getattr(getattr(hf, "model", None), "layers", []):
            if hasattr(layer.mlp, "up_proj"):
                layer.mlp.up_proj.bias = None
                layer.mlp.gate_proj.bias = None
    return hf.eval()


def hooked_init_state(cfg: dict[str, Any]) -> dict[str, Tensor]:
    """The weights ``HookedTransformer(HookedTransformerConfig(**cfg))`` starts from, drawn the same way.

    TransformerLens 3's default (``init_mode="gpt2"``): the config seeds ``torch``, ``random`` and
    ``numpy`` with ``cfg["seed"]`` (when set), then every ``W_`` parameter, in the model's parameter
    order, is drawn from ``N(0, initializer_range)``; biases are zero and norm weights one. Drawing
    the same numbers on TransformerLens 4 gives a bridge the weights of the HookedTransformer the
    same seed builds on 3.x, so seeded runs agree across majors.
    """
    import random

    import numpy as np

    if cfg.get("init_mode", "gpt2") != "gpt2":
        raise ValueError(f"init_mode={cfg['init_mode']!r}: rhlens draws TransformerLens's 'gpt2' initialisation only")
    if cfg.get("seed") is not None:
        seed = int(cfg["seed"])
        torch.manual_seed(seed), random.seed(seed), np.random.seed(seed)
    m, n, h, dm, v = cfg["d_model"], cfg["n_heads"], cfg["d_head"], cfg["d_mlp"], cfg["d_vocab"]
    kv, mlp = cfg["n_key_value_heads"] or n, int(not cfg["attn_only"])  # attention-only: no MLP, no ln2
    k_prefix = "_" if cfg["n_key_value_heads"] is not None else ""
    shapes: list[tuple[str, tuple[int, ...]]] = [("embed.W_E", (v, m))]
    if cfg["positional_embedding_type"] == "standard":
        shapes.append(("pos_embed.W_pos", (cfg["n_ctx"], m)))
    for l in range(cfg["n_layers"]):
        b = f"blocks.{l}."
        shapes += [(b + "attn.W_Q", (n, m, h)), (b + "attn.W_O", (n, h, m)), (b + f"attn.{k_prefix}W_K", (kv, m, h)),
                   (b + f"attn.{k_prefix}W_V", (kv, m, h))] + [(b + "mlp.W_in", (m, dm)), (b + "mlp.W_out", (dm, m))] * mlp
        if cfg["gated_mlp"] and mlp:
            shapes.append((b + "mlp.W_gate", (m, dm)))
    shapes.append(("unembed.W_U", (m, v)))
    std = float(cfg["initializer_range"])
    state = {key: torch.empty(shape).normal_(std=std) for key, shape in shapes}
    norms = ["ln_final"] + [f"blocks.{l}.ln{i}" for l in range(cfg["n_layers"]) for i in (1, 2)[:1 + mlp]]
    for name in norms if cfg["normalization_type"] in ("RMS", "LN") else ():  # folded norms (RMSPre/LNPre) have no weights
        state[name + ".w"] = torch.ones(m)
        if cfg["normalization_type"] == "LN":
            state[name + ".b"] = torch.zeros(m)
    for l in range(cfg["n_layers"]):
        b = f"blocks.{l}."
        state.update({b + "attn.b_Q": torch.zeros(n, h), b + f"attn.{k_prefix}b_K": torch.zeros(kv, h), b + f"attn.{k_prefix}b_V": torch.zeros(kv, h),
                      b + "attn.b_O": torch.zeros(m), **({b + "mlp.b_in": torch.zeros(dm), b + "mlp.b_out": torch.zeros(m)} if mlp else {})})
    state["unembed.b_U"] = torch.zeros(v)
    return state


class _Namespace:
    def __init__(self, d: dict[str, Any]) -> None:
        self.__dict__.update(d)


def _torch_dtype(value: Any) -> torch.dtype:
    return value if isinstance(value, torch.dtype) else getattr(torch, str(value).removeprefix("torch."))


def boot_bridge(hf_model: Any, tokenizer: Any, model_name: str) -> TransformerBridge:
    """A ``TransformerBridge`` on ``hf_model`` (offline), with rhlens's KV-cache and softmax-precision fixes, in eval mode."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    param = next(hf_model.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bridge = TransformerBridge.boot_transformers(model_name=model_name, hf_model=hf_model,
                                                     tokenizer=tokenizer if tokenizer is not None else _placeholder_tokenizer(),
                                                     device=str(param.device), dtype=param.dtype, trust_remote_code=False)
    if tokenizer is None:  # booting without one would fetch the tokenizer of model_name from the Hub
        bridge.tokenizer = None
    enable_bridge_kv_cache(bridge)
    keep_softmax_precision(bridge)
    bridge.eval()
    return bridge


def _placeholder_tokenizer() -> Any:
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>")), unk_token="<unk>")


def bridge_from_hf(fields: dict[str, Any], hf: Any, tokenizer: Any, padding_side: str | None) -> TransformerBridge:
    """A bridge on ``hf`` (built by :func:`hf_model_from_config` from ``fields``) that remembers ``fields``."""
    bridge = boot_bridge(hf, tokenizer, model_name=f"rhlens/{fields.get('model_name', 'custom')}")
    if padding_side is not None and getattr(bridge, "tokenizer", None) is not None:
        bridge.tokenizer.padding_side = padding_side
    object.__setattr__(bridge, CONFIG_ATTR, dict(fields))
    # fields the bridge's config leaves unset (rotary_dim ...) or misreads (TransformerLens 4.3 reads rotary_base 10000
    # whatever the Hugging Face config's rope_theta; attn_only False from the MLPs of width 0; "RMS" for folded "RMSPre")
    for key, value in complete_config(fields).items():
        if getattr(bridge.cfg, key, 0) is None or key in ("rotary_base", "attn_only", "normalization_type"):
            setattr(bridge.cfg, key, value)
    return bridge


def new_model(fields: dict[str, Any], *, tokenizer: Any, padding_side: str | None = "left") -> Any:
    """A model with fresh weights (seeded by ``fields["seed"]``) in eval mode: a ``HookedTransformer``
    built from ``HookedTransformerConfig(**fields)`` on TransformerLens 3, a bridge on 4."""
    if NATIVE_KIND == "hooked":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            model = HookedTransformer(HookedTransformerConfig(**fields), tokenizer=tokenizer, default_padding_side=padding_side)
        return model.eval()
    return bridge_from_hf(fields, hf_model_from_config(fields, tokenizer=tokenizer), tokenizer, padding_side)


def _derived(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in ("rotary_sin", "rotary_cos", "mask", "IGNORE")


def model_from_state(fields: dict[str, Any], state: dict[str, Tensor], *, tokenizer: Any, padding_side: str | None,
                     device: str | torch.device = "cpu") -> Any:
    """A model with the TransformerLens-keyed weights ``state`` (eval mode, on ``device``).

    Raises ``ValueError`` when ``fields`` is no valid config and :class:`StateMismatchError` when
    ``state`` does not fit it.
    """
    if NATIVE_KIND == "bridge":
        with torch.random.fork_rng(devices=[]):  # only the keys are wanted: leave the global RNG alone
            expected = set(hooked_init_state({**complete_config(fields), "seed": None}))
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise StateMismatchError(f"missing {missing[:4]}, unexpected {unexpected[:4]}")
        hf = hf_model_from_config({**fields, "seed": None}, state, tokenizer=tokenizer).to(device)
        return bridge_from_hf(fields, hf, tokenizer, padding_side)
    try:
        cfg = HookedTransformerConfig(**{**fields, "init_weights": False, "device": str(device)})
    except (TypeError, AssertionError) as exc:
        raise ValueError(str(exc)) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False, default_padding_side=padding_side)
    expected = {k for k in model.state_dict() if not _derived(k)}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise StateMismatchError(f"missing {missing[:4]}, unexpected {unexpected[:4]}")
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise StateMismatchError(str(exc)) from None
    model.to(device, print_details=False)
    return model.eval()


def model_config(model: Any) -> dict[str, Any]:
    """The ``HookedTransformerConfig`` fields ``model`` was built from (values as the config holds them).

    Raises ``TypeError`` for a bridge rhlens did not build (e.g. :func:`rhlens.load_bridge` of a folder).
    """
    if model_kind(model) == "hooked":
        return {name: getattr(model.cfg, name) for name in HookedTransformerConfig.__dataclass_fields__}
    fields = getattr(model, CONFIG_ATTR, None)
    if fields is None:
        raise TypeError(
            "this TransformerBridge was not built by rhlens (tiny_llama, load_model, load_base), so rhlens has no "
            "TransformerLens config for it; keep the Hugging Face folder it was booted from instead"
        )
    return complete_config(fields)


def model_state(model: Any) -> dict[str, Tensor]:
    """``model``'s weights with TransformerLens keys (derived rotary/mask buffers left out)."""
    if model_kind(model) == "hooked":
        return {k: v for k, v in plain_state_dict(model).items() if not _derived(k)}
    cfg = model_config(model)
    family, _ = hf_shape_problems(cfg)
    # the bridge wraps the Hugging Face modules in place: their parameters gain "._original_component"
    hf_state = {k.replace("._original_component", ""): v for k, v in plain_state_dict(model.original_model).items()}
    return (layout.llama_from_hf if family == "llama" else layout.gpt2_from_hf)(layout.gpt2_bridge_join(hf_state), _Namespace(cfg))


def set_model_state(model: Any, state: dict[str, Tensor]) -> None:
    """Copy TransformerLens-keyed weights ``state`` into ``model`` in place (same architecture).

    On a bridge they are converted (:mod:`rhlens.adapter.layout`) into its Hugging Face model; a
    bias the Hugging Face model was built without must be zero there (else ``ValueError``).
    """
    if model_kind(model) == "hooked":
        model.load_state_dict(state, strict=False)
        return
    cfg = model_config(model)
    family, _ = hf_shape_problems(cfg)
    hf_state = layout.gpt2_bridge_split((layout.llama_to_hf if family == "llama" else layout.gpt2_to_hf)(state, _Namespace(cfg)))
    own = {k.replace("._original_component", ""): v for k, v in model.original_model.named_parameters()}
    extra = sorted(k for k in set(hf_state) - set(own) if layout.nonzero(hf_state[k]))  # zero biases: nothing to hold
    if extra:
        raise ValueError(f"the weights need {extra[:3]}, which this bridge's Hugging Face model was built without; load them with load_model")
    with torch.no_grad():
        for key, target in own.items():
            target.copy_(hf_state[key] if key in hf_state else torch.zeros_like(target))
