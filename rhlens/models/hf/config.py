"""``config.json`` -> ``HookedTransformerConfig`` for Llama, Mistral, Qwen2 and GPT-2, offline."""

import math
import os
from pathlib import Path
from typing import Any

import torch

from rhlens.adapter.convert import supported_activations
from rhlens.adapter.core import HookedTransformerConfig
from rhlens.adapter.checkpoint import override_problem
from rhlens.adapter.native import config_field_names
from rhlens.models.hf.folder import CONFIG_FILE, SUPPORTED_ARCHITECTURES, CheckpointError

__all__ = ["hooked_config_from_hf"]


def _field(raw: dict[str, Any], source: Path, name: str, *alts: str, default: Any = ...) -> Any:
    for key in (name, *alts):
        if raw.get(key) is not None:
            return raw[key]
    if default is ...:
        raise CheckpointError(f"{source}: required field {name!r} is missing; add it (see the model family's config class)")
    return default


def _positive_int(raw: dict[str, Any], source: Path, name: str, *alts: str, default: Any = ...) -> int:
    value = _field(raw, source, name, *alts, default=default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise CheckpointError(f"{source}: field {name!r} must be a positive integer, got {value!r}")
    return value


def _positive_float(raw: dict[str, Any], source: Path, name: str, *alts: str, default: Any = ...) -> float:
    value = _field(raw, source, name, *alts, default=default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise CheckpointError(f"{source}: field {name!r} must be a positive number, got {value!r}")
    return float(value)


def _check_memory(cfg: dict[str, Any], source: Path, dtype: torch.dtype, device: "str | torch.device") -> None:
    """Refuse a config whose weights could not fit the device's free memory, before allocating."""
    d, layers = cfg["d_model"], cfg["n_layers"]
    kv = cfg.get("n_key_value_heads") or cfg["n_heads"]
    per_layer = d * cfg["d_head"] * (2 * cfg["n_heads"] + 2 * kv) + (3 if cfg.get("gated_mlp") else 2) * d * cfg["d_mlp"]
    n_bytes = (layers * per_layer + 2 * cfg["d_vocab"] * d) * torch.empty((), dtype=dtype).element_size()
    free = available_memory(device)
    if free is not None and n_bytes > free:
        raise CheckpointError(
            f"{source}: the weights would take {n_bytes / 2**30:.1f} GiB ({dtype}) but {device} has "
            f"{free / 2**30:.1f} GiB free; check hidden_size={d}, num_hidden_layers={layers}, "
            f"intermediate_size={cfg['d_mlp']}, vocab_size={cfg['d_vocab']}"
        )


def available_memory(device: "str | torch.device") -> int | None:
    """Free bytes on ``device`` (CUDA: the driver's free memory; CPU: ``MemAvailable``), or ``None``
    when unknown."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "cpu":
        try:
            with open("/proc/meminfo", encoding="ascii") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:  # pragma: no cover - not Linux
            return None
    return None


def _rope_settings(raw: dict[str, Any], source: Path, max_pos: int) -> dict[str, Any]:
    """TransformerLens rotary fields from ``rope_theta``/``rope_parameters``/``rope_scaling``."""
    params = raw.get("rope_parameters") or {}
    scaling = raw.get("rope_scaling") or {}
    if not isinstance(params, dict) or not isinstance(scaling, dict):
        raise CheckpointError(f"{source}: 'rope_parameters' / 'rope_scaling' must be JSON objects")
    theta = raw.get("rope_theta", params.get("rope_theta", scaling.get("rope_theta", 10000.0)))
    merged = {**params, **scaling}
    rope_type = str(merged.get("rope_type") or merged.get("type") or "default").lower()
    out: dict[str, Any] = {"rotary_base": _positive_float({"rope_theta": theta}, source, "rope_theta")}
    if rope_type == "default":
        return out
    if rope_type == "linear":
        out["rotary_scaling_factor"] = float(merged.get("factor", 1.0))
        return out
    if rope_type == "llama3":
        out.update(
            use_NTK_by_parts_rope=True,
            NTK_original_ctx_len=int(merged.get("original_max_position_embeddings", max_pos)),
            NTK_by_parts_low_freq_factor=float(merged.get("low_freq_factor", 1.0)),
            NTK_by_parts_high_freq_factor=float(merged.get("high_freq_factor", 4.0)),
            NTK_by_parts_factor=float(merged.get("factor", 1.0)),
        )
        return out
    raise CheckpointError(
        f"{source}: rope type {rope_type!r} (field 'rope_scaling'/'rope_parameters') is not supported; "
        "supported: 'default', 'linear', 'llama3'. Remove the scaling from config.json to load the "
        "unscaled model, or load the folder with rhlens.models.load_bridge(path)."
    )


def _rotary_family(raw: dict[str, Any], source: Path, arch: str) -> dict[str, Any]:
    d_model = _positive_int(raw, source, "hidden_size")
    n_heads = _positive_int(raw, source, "num_attention_heads")
    head_dim = raw.get("head_dim")
    if head_dim is None:
        if d_model % n_heads:
            raise CheckpointError(
                f"{source}: hidden_size={d_model} is not divisible by num_attention_heads={n_heads} and "
                "head_dim is not set; fix one of them (head_dim = hidden_size / num_attention_heads)"
            )
        head_dim = d_model // n_heads
    elif not isinstance(head_dim, int) or head_dim <= 0:
        raise CheckpointError(f"{source}: field 'head_dim' must be a positive integer, got {head_dim!r}")
    n_kv = _positive_int(raw, source, "num_key_value_heads", default=n_heads)
    if n_heads % n_kv:
        raise CheckpointError(
            f"{source}: num_attention_heads={n_heads} is not a multiple of num_key_value_heads={n_kv}; "
            "grouped-query attention needs whole groups of query heads per key/value head"
        )
    max_pos = _positive_int(raw, source, "max_position_embeddings", default=2048)
    act = _field(raw, source, "hidden_act", default="silu")
    cfg: dict[str, Any] = dict(
        d_model=d_model,
        d_head=head_dim,
        n_heads=n_heads,
        d_mlp=_positive_int(raw, source, "intermediate_size"),
        n_layers=_positive_int(raw, source, "num_hidden_layers"),
        n_ctx=max_pos,
        eps=_positive_float(raw, source, "rms_norm_eps", default=1e-6),
        d_vocab=_positive_int(raw, source, "vocab_size"),
        act_fn=act,
        normalization_type="RMS",
        positional_embedding_type="rotary",
        rotary_dim=head_dim,
        rotary_adjacent_pairs=False,
        final_rms=True,
        gated_mlp=True,
        # Llama keeps TransformerLens's "no GQA when counts are equal"; Mistral/Qwen2 converters
        # always write grouped (_W_K) weights.
        n_key_value_heads=(n_kv if n_kv != n_heads or arch != "LlamaForCausalLM" else None),
    )
    cfg.update(_rope_settings(raw, source, max_pos))
    if raw.get("mlp_bias"):
        raise CheckpointError(
            f"{source}: mlp_bias=true is not supported (TransformerLens's gated MLP has no gate bias); "
            "load this folder with rhlens.models.load_bridge(path) instead"
        )
    if arch == "MistralForCausalLM":
        window = raw.get("sliding_window")
        if window is not None and window < max_pos:
            cfg.update(use_local_attn=True, window_size=int(window), attn_types=["local"] * cfg["n_layers"])
    if arch == "Qwen2ForCausalLM":
        if raw.get("use_sliding_window"):
            raise CheckpointError(
                f"{source}: use_sliding_window=true is not supported for Qwen2; set it to false "
                "(Qwen2 checkpoints ship it false) or load with rhlens.models.load_bridge(path)"
            )
    return cfg


def _gpt2_family(raw: dict[str, Any], source: Path) -> dict[str, Any]:
    d_model = _positive_int(raw, source, "n_embd", "hidden_size")
    n_heads = _positive_int(raw, source, "n_head", "num_attention_heads")
    if d_model % n_heads:
        raise CheckpointError(
            f"{source}: n_embd={d_model} is not divisible by n_head={n_heads}; fix one of them"
        )
    n_inner = raw.get("n_inner")
    return dict(
        d_model=d_model,
        d_head=d_model // n_heads,
        n_heads=n_heads,
        d_mlp=int(n_inner) if n_inner else 4 * d_model,
        n_layers=_positive_int(raw, source, "n_layer", "num_hidden_layers"),
        n_ctx=_positive_int(raw, source, "n_positions", "n_ctx", default=1024),
        eps=_positive_float(raw, source, "layer_norm_epsilon", default=1e-5),
        d_vocab=_positive_int(raw, source, "vocab_size"),
        act_fn=_field(raw, source, "activation_function", default="gelu_new"),
        use_attn_scale=bool(raw.get("scale_attn_weights", True)),
        scale_attn_by_inverse_layer_idx=bool(raw.get("scale_attn_by_inverse_layer_idx", False)),
        normalization_type="LN",
        positional_embedding_type="standard",
    )


def hf_config_fields(
    raw: dict[str, Any],
    *,
    source: str | os.PathLike = CONFIG_FILE,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    **overrides: Any,
) -> dict[str, Any]:
    """Map a parsed Hugging Face ``config.json`` to ``HookedTransformerConfig`` fields (a dict), offline.

    No TransformerLens class is built, so this works on either major (``rhlens study --dry-run``
    reads a checkpoint's shape with it); :func:`hooked_config_from_hf` makes the config object.

    Mirrors ``transformer_lens.loading_from_pretrained.convert_hf_model_config`` for Llama, Mistral,
    Qwen2 and GPT-2 but never calls the Hub, uses ``head_dim`` when given, and keeps the folder's
    ``max_position_embeddings`` as ``n_ctx`` (override with ``n_ctx=...``). Rotary base comes from
    ``rope_theta`` (or ``rope_parameters.rope_theta``); ``rope_scaling`` of type ``linear`` or
    ``llama3`` is mapped, anything else raises.

    Args:
        raw: the parsed ``config.json`` (see :func:`read_hf_config`).
        source: the file name used in error messages.
        **overrides: ``HookedTransformerConfig`` fields that win over the mapped ones (on TransformerLens 4
            only :data:`rhlens.adapter.checkpoint.BRIDGE_OVERRIDES`; others raise naming them).

    >>> cfg = hf_config_fields({"architectures": ["LlamaForCausalLM"], "hidden_size": 64,
    ...     "num_attention_heads": 8, "num_key_value_heads": 4, "intermediate_size": 172,
    ...     "num_hidden_layers": 5, "vocab_size": 512, "max_position_embeddings": 512,
    ...     "rope_theta": 500000.0})
    >>> cfg["d_head"], cfg["n_key_value_heads"], cfg["rotary_base"], cfg["n_ctx"]
    (8, 4, 500000.0, 512)
    """
    src = Path(source)
    archs = raw.get("architectures") or [None]
    arch = archs[0]
    if arch not in SUPPORTED_ARCHITECTURES:
        raise CheckpointError(
            f"{src}: architectures[0]={arch!r} is not supported; supported: {', '.join(SUPPORTED_ARCHITECTURES)}"
        )
    cfg = _gpt2_family(raw, src) if arch == "GPT2LMHeadModel" else _rotary_family(raw, src, arch)
    activations = supported_activations()
    if cfg["act_fn"] not in activations:
        field = "activation_function" if arch == "GPT2LMHeadModel" else "hidden_act"
        raise CheckpointError(
            f"{src}: {field}={cfg['act_fn']!r} is not an activation TransformerLens supports "
            f"({', '.join(sorted(activations))})"
        )
    cfg.update(
        model_name=Path(str(raw.get("_name_or_path") or src.parent.name or "checkpoint")).name or "checkpoint",
        original_architecture=arch,
        dtype=dtype,
        device=str(device),
        init_weights=False,
        tokenizer_name=None,
    )
    problem = override_problem(overrides)  # what this TransformerLens's model class takes
    if problem is not None:
        raise CheckpointError(problem)
    if arch == "GPT2LMHeadModel" and overrides.get("n_ctx", cfg["n_ctx"]) > cfg["n_ctx"]:
        raise CheckpointError(
            f"n_ctx={overrides['n_ctx']} exceeds {src}'s n_positions={cfg['n_ctx']}: GPT-2 has learned "
            "positions and cannot be extended; pass n_ctx <= n_positions"
        )
    cfg.update(overrides)
    _check_memory(cfg, src, dtype, device)
    return cfg


def hooked_config_from_hf(
    raw: dict[str, Any],
    *,
    source: str | os.PathLike = CONFIG_FILE,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    **overrides: Any,
) -> HookedTransformerConfig:
    """The ``HookedTransformerConfig`` of :func:`hf_config_fields` (TransformerLens 3; on 4 there is
    no such class: ``TypeError`` saying so)."""
    fields = hf_config_fields(raw, source=source, dtype=dtype, device=device, **overrides)
    if config_field_names() is None:
        raise TypeError("TransformerLens 4 has no HookedTransformerConfig; use hf_config_fields (a dict) or "
                        "rhlens.load_hf_checkpoint, which boots a TransformerBridge there")
    return HookedTransformerConfig(**fields)
