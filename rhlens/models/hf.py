"""Load a local Hugging Face checkpoint folder as a ``HookedTransformer``, fully offline.

``HookedTransformer.from_pretrained`` accepts only official model names (and may call the Hub);
:func:`load_hf_checkpoint` reads a folder instead:

1. ``config.json`` -> a ``HookedTransformerConfig`` (:func:`hooked_config_from_hf`), for the
   families in :data:`SUPPORTED_ARCHITECTURES` (Llama, Mistral, Qwen2, GPT-2);
2. the weights (``model.safetensors``, sharded ``model.safetensors.index.json`` whose shard paths
   must stay inside the folder, or ``pytorch_model.bin`` read with ``torch.load(weights_only=True)``;
   nothing is unpickled) into the Hugging Face model class built from the config (eager attention,
   no download);
3. TransformerLens's own weight conversion (``convert_llama_weights`` ...) and
   ``load_and_process_state_dict`` with the processing flags you ask for (default: none, so
   activations equal the Hugging Face model's);
4. the folder's fast tokenizer (``AutoTokenizer.from_pretrained(path, local_files_only=True,
   trust_remote_code=False)``).

No code from the folder ever runs: every ``from_pretrained`` call passes ``trust_remote_code=False``,
and a folder whose ``auto_map`` asks for its own classes is refused (:func:`refuse_remote_code`).

Every problem with the folder raises :class:`CheckpointError`, naming the file and field and saying
what to do.

Memory: the Hugging Face model and the HookedTransformer exist together while converting (about
twice the weights); the Hugging Face model is freed before returning.

Example (any local Llama-family folder, here karpathy's stories260K converted to Hugging Face)::

    model = load_hf_checkpoint("path/to/stories260K")
    model.cfg.n_layers, model.cfg.n_heads, model.cfg.n_key_value_heads   # (5, 8, 4)
    logits = model(model.to_tokens("Once upon a time"))                   # [1, pos, 512]
"""

import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from rhlens.adapter.core import HookedTransformer, record_weight_processing
from rhlens.stopping import attach_generation_eos
from transformer_lens import HookedTransformerConfig

__all__ = [
    "SUPPORTED_ARCHITECTURES",
    "CheckpointError",
    "hooked_config_from_hf",
    "load_hf_checkpoint",
    "load_hf_model",
    "load_local_tokenizer",
    "read_hf_config",
    "read_hf_state_dict",
    "refuse_remote_code",
]

SUPPORTED_ARCHITECTURES: tuple[str, ...] = (
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "Qwen2ForCausalLM",
    "GPT2LMHeadModel",
)

_MODEL_TYPES = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "gpt2": "GPT2LMHeadModel",
}

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
BIN_FILE = "pytorch_model.bin"
BIN_INDEX = "pytorch_model.bin.index.json"

# Tensors a checkpoint may carry that are rebuilt by the model (causal-mask and rotary buffers).
_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq")


class CheckpointError(ValueError):
    """A local checkpoint folder cannot be loaded. The message names the file, the field and the fix."""


# --------------------------------------------------------------------------------------------
# no code from a model folder
# --------------------------------------------------------------------------------------------
_CODE_FIELDS = ("auto_map",)


def refuse_remote_code(folder: str | os.PathLike) -> None:
    """Raise :class:`CheckpointError` when ``folder``'s JSON files ask for custom code (``auto_map``).

    rhlens passes ``trust_remote_code=False`` to every ``from_pretrained`` call, so such a folder
    never runs its code; transformers then fails with a message that suggests
    ``trust_remote_code=True``. Loaders call this after that failure to say what happened instead.
    Returns ``None`` when no file names custom code.
    """
    folder = Path(folder)
    for name in (CONFIG_FILE, "tokenizer_config.json", "processor_config.json", "preprocessor_config.json"):
        path = folder / name
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(raw, dict) and raw.get("auto_map"):
            raise CheckpointError(
                f"{path}: field 'auto_map'={raw['auto_map']!r} asks to run Python code shipped in {folder}; rhlens "
                "never runs code from a model folder (trust_remote_code=False). Use a folder whose classes are "
                "built into transformers (remove 'auto_map', and set 'tokenizer_class' / 'architectures' to a "
                "built-in class such as PreTrainedTokenizerFast / LlamaForCausalLM)."
            )


# --------------------------------------------------------------------------------------------
# config.json
# --------------------------------------------------------------------------------------------
def read_hf_config(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``config.json`` of a checkpoint folder, with its ``architectures`` entry checked.

    Raises :class:`CheckpointError` when the folder or file is missing, the JSON is invalid, or
    ``architectures`` names no supported class (see :data:`SUPPORTED_ARCHITECTURES`).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a directory: pass the folder that holds config.json and the weights")
    cfg_path = folder / CONFIG_FILE
    if not cfg_path.is_file():
        raise CheckpointError(
            f"{cfg_path} is missing: a Hugging Face checkpoint folder needs config.json. "
            "Write it with model.config.save_pretrained(folder) (or model.save_pretrained(folder))."
        )
    try:
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{cfg_path} is not valid JSON ({exc}); restore it from the original checkpoint") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{cfg_path} must hold a JSON object, got {type(raw).__name__}")
    archs = raw.get("architectures")
    if not archs and raw.get("model_type") in _MODEL_TYPES:
        # config.save_pretrained() of a config that never saw a model omits 'architectures'.
        archs = raw["architectures"] = [_MODEL_TYPES[raw["model_type"]]]
    if not archs or not isinstance(archs, list):
        raise CheckpointError(
            f"{cfg_path}: field 'architectures' is missing or empty; set it to one of "
            f"{list(SUPPORTED_ARCHITECTURES)} (e.g. \"architectures\": [\"LlamaForCausalLM\"])"
        )
    if archs[0] not in SUPPORTED_ARCHITECTURES:
        raise CheckpointError(
            f"{cfg_path}: architectures[0]={archs[0]!r} is not supported by rhlens.load_hf_checkpoint; "
            f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}. For other architectures try "
            "rhlens.models.load_bridge(path) (TransformerBridge) instead."
        )
    return raw


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


def _rope_settings(raw: dict[str, Any], source: Path, max_pos: int) -> dict[str, Any]:
    """TransformerLens rotary fields from ``rope_theta``/``rope_parameters``/``rope_scaling``."""
    params = raw.get("rope_parameters") or {}
    scaling = raw.get("rope_scaling") or {}
    if not isinstance(params, dict) or not isinstance(scaling, dict):
        raise CheckpointError(f"{source}: 'rope_parameters' / 'rope_scaling' must be JSON objects")
    theta = raw.get("rope_theta", params.get("rope_theta", scaling.get("rope_theta", 10000.0)))
    merged = {**params, **scaling}
    rope_type = str(merged.get("rope_type") or merged.get("type") or "default").lower()
    out: dict[str, Any] = {"rotary_base": float(theta)}
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
        eps=float(_field(raw, source, "rms_norm_eps", default=1e-6)),
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
        eps=float(_field(raw, source, "layer_norm_epsilon", default=1e-5)),
        d_vocab=_positive_int(raw, source, "vocab_size"),
        act_fn=_field(raw, source, "activation_function", default="gelu_new"),
        use_attn_scale=bool(raw.get("scale_attn_weights", True)),
        scale_attn_by_inverse_layer_idx=bool(raw.get("scale_attn_by_inverse_layer_idx", False)),
        normalization_type="LN",
        positional_embedding_type="standard",
    )


def hooked_config_from_hf(
    raw: dict[str, Any],
    *,
    source: str | os.PathLike = CONFIG_FILE,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    **overrides: Any,
) -> HookedTransformerConfig:
    """Map a parsed Hugging Face ``config.json`` to a ``HookedTransformerConfig``, offline.

    Mirrors ``transformer_lens.loading_from_pretrained.convert_hf_model_config`` for Llama, Mistral,
    Qwen2 and GPT-2 but never calls the Hub, uses ``head_dim`` when given, and keeps the folder's
    ``max_position_embeddings`` as ``n_ctx`` (override with ``n_ctx=...``). Rotary base comes from
    ``rope_theta`` (or ``rope_parameters.rope_theta``); ``rope_scaling`` of type ``linear`` or
    ``llama3`` is mapped, anything else raises.

    Args:
        raw: the parsed ``config.json`` (see :func:`read_hf_config`).
        source: the file name used in error messages.
        **overrides: ``HookedTransformerConfig`` fields that win over the mapped ones.

    >>> cfg = hooked_config_from_hf({"architectures": ["LlamaForCausalLM"], "hidden_size": 64,
    ...     "num_attention_heads": 8, "num_key_value_heads": 4, "intermediate_size": 172,
    ...     "num_hidden_layers": 5, "vocab_size": 512, "max_position_embeddings": 512,
    ...     "rope_theta": 500000.0})
    >>> cfg.d_head, cfg.n_key_value_heads, cfg.rotary_base, cfg.n_ctx
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
    from transformer_lens.utilities.activation_functions import SUPPORTED_ACTIVATIONS

    if cfg["act_fn"] not in SUPPORTED_ACTIVATIONS:
        field = "activation_function" if arch == "GPT2LMHeadModel" else "hidden_act"
        raise CheckpointError(
            f"{src}: {field}={cfg['act_fn']!r} is not an activation TransformerLens supports "
            f"({', '.join(sorted(SUPPORTED_ACTIVATIONS))})"
        )
    cfg.update(
        model_name=Path(str(raw.get("_name_or_path") or src.parent.name or "checkpoint")).name or "checkpoint",
        original_architecture=arch,
        dtype=dtype,
        device=str(device),
        init_weights=False,
        tokenizer_name=None,
    )
    valid = set(HookedTransformerConfig.__dataclass_fields__)
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise CheckpointError(
            f"unknown HookedTransformerConfig field(s) in the overrides: {unknown}; valid fields include "
            "n_ctx, rotary_base, default_prepend_bos, use_attn_result (see HookedTransformerConfig)"
        )
    if arch == "GPT2LMHeadModel" and overrides.get("n_ctx", cfg["n_ctx"]) > cfg["n_ctx"]:
        raise CheckpointError(
            f"n_ctx={overrides['n_ctx']} exceeds {src}'s n_positions={cfg['n_ctx']}: GPT-2 has learned "
            "positions and cannot be extended; pass n_ctx <= n_positions"
        )
    cfg.update(overrides)
    return HookedTransformerConfig(**cfg)


# --------------------------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------------------------
def _check_shard_path(index: Path, folder: Path, name: Any) -> None:
    """Refuse a ``weight_map`` entry that is absolute or climbs out of ``folder`` (``..``)."""
    if not isinstance(name, str) or not name:
        raise CheckpointError(f"{index}: weight_map value {name!r} is not a file name")
    # Lexical check: symlinked shards (a Hugging Face cache snapshot) stay allowed.
    if Path(name).is_absolute() or ".." in Path(name).parts or "\\" in name or ":" in name:
        raise CheckpointError(
            f"{index}: weight_map entry {name!r} points outside {folder}; shard paths must be file names inside "
            "the checkpoint folder (e.g. 'model-00001-of-00002.safetensors'). Fix the index or move the shards."
        )


def _weight_files(folder: Path) -> list[Path]:
    """The weight files to read, checking that every shard named by an index exists."""
    for index_name in (SAFETENSORS_INDEX, BIN_INDEX):
        index = folder / index_name
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise CheckpointError(f"{index}: not a valid shard index (needs a 'weight_map' object): {exc}") from None
            if not isinstance(weight_map, dict):
                raise CheckpointError(f"{index}: field 'weight_map' must be an object of tensor name -> shard file")
            shards = sorted(set(weight_map.values()), key=str)
            for shard_name in shards:
                _check_shard_path(index, folder, shard_name)
            missing = [s for s in shards if not (folder / s).is_file()]
            if missing:
                raise CheckpointError(
                    f"{index} lists shard(s) that are missing from {folder}: {missing[:5]}; copy every shard "
                    "of the checkpoint into the folder"
                )
            return [folder / s for s in shards]
    for name in (SAFETENSORS_FILE, BIN_FILE):
        if (folder / name).is_file():
            return [folder / name]
    others = sorted(p.name for p in folder.glob("*.safetensors"))
    if len(others) == 1:
        return [folder / others[0]]
    raise CheckpointError(
        f"no weights in {folder}: expected {SAFETENSORS_FILE}, {SAFETENSORS_INDEX} with its shards, or {BIN_FILE}. "
        "Save them with model.save_pretrained(folder) (safetensors is the default)."
    )


def read_hf_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint folder's weight files, keyed as in the files. Never unpickles.

    Safetensors files are read with ``safetensors.torch.load_file``; ``.bin`` files with
    ``torch.load(..., weights_only=True)`` (plain tensors only).
    """
    from safetensors.torch import load_file

    out: dict[str, torch.Tensor] = {}
    for file in _weight_files(Path(path)):
        try:
            if file.suffix == ".safetensors":
                part = load_file(str(file), device="cpu")
            else:
                part = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - rewrap with the file name
            raise CheckpointError(f"cannot read weights from {file}: {exc}. Re-save the checkpoint as safetensors.") from None
        if not isinstance(part, dict):
            raise CheckpointError(f"{file} does not hold a flat name -> tensor mapping")
        out.update(part)
    return out


def load_hf_model(
    path: str | os.PathLike,
    raw: dict[str, Any] | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> Any:
    """The folder's Hugging Face ``*ForCausalLM`` with its weights (eager attention), offline.

    The model class is built from ``config.json`` with ``_from_config`` (no download) and filled
    from :func:`read_hf_state_dict`; tied embeddings (``tie_word_embeddings``) are re-tied. Missing
    or unexpected tensors, and tensors whose shape contradicts ``config.json``, raise
    :class:`CheckpointError`.
    """
    import transformers
    from transformers import AutoConfig

    folder = Path(path)
    raw = raw if raw is not None else read_hf_config(folder)
    arch = raw["architectures"][0]
    model_cls = getattr(transformers, arch)
    try:
        hf_config = AutoConfig.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001
        refuse_remote_code(folder)
        raise CheckpointError(f"{folder / CONFIG_FILE}: transformers cannot read it: {exc}") from None
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # pragma: no cover - older transformers
        from transformers.modeling_utils import no_init_weights  # type: ignore[no-redef]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with no_init_weights():
            hf = model_cls._from_config(hf_config, attn_implementation="eager", dtype=dtype)
    state = read_hf_state_dict(folder)
    prefix = model_cls.base_model_prefix
    expected = set(hf.state_dict())
    if not any(k.startswith(prefix + ".") for k in state) and any(k.startswith(prefix + ".") for k in expected):
        state = {(k if k.startswith("lm_head.") else f"{prefix}.{k}"): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.endswith(_IGNORED_SUFFIXES)}
    tied = bool(getattr(hf.config, "tie_word_embeddings", False))
    missing = sorted(expected - set(state) - ({"lm_head.weight"} if tied else set()))
    unexpected = sorted(set(state) - expected)
    files = ", ".join(p.name for p in _weight_files(folder))
    if missing or unexpected:
        raise CheckpointError(
            f"the weights in {folder} ({files}) do not match {CONFIG_FILE} ({arch}): "
            f"missing {missing[:4]}{' ...' if len(missing) > 4 else ''}, unexpected {unexpected[:4]}"
            f"{' ...' if len(unexpected) > 4 else ''}. Check num_hidden_layers, tie_word_embeddings and "
            "architectures in config.json against the checkpoint, or re-save it with save_pretrained."
        )
    try:
        hf.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise CheckpointError(
            f"tensor shapes in {folder} ({files}) contradict {CONFIG_FILE}: {exc}. Fix hidden_size, "
            "intermediate_size, num_attention_heads, num_key_value_heads, head_dim or vocab_size."
        ) from None
    if tied:
        hf.tie_weights()
    return hf.to(device).eval()


# --------------------------------------------------------------------------------------------
# tokenizer
# --------------------------------------------------------------------------------------------
_TOKENIZER_SOURCES = (("tokenizer.json",), ("vocab.json", "merges.txt"), ("tokenizer.model",))


def load_local_tokenizer(path: str | os.PathLike, *, vocab_size: int | None = None) -> Any:
    """The folder's fast tokenizer, offline; its vocabulary must fit ``vocab_size`` embeddings.

    Raises :class:`CheckpointError` when no tokenizer files are present, when only a slow
    (Python) tokenizer can be built, or when ``len(tokenizer) > vocab_size``.
    """
    from transformers import AutoTokenizer

    folder = Path(path)
    if not any(all((folder / f).is_file() for f in group) for group in _TOKENIZER_SOURCES):
        raise CheckpointError(
            f"no tokenizer files in {folder}: expected tokenizer.json (or vocab.json + merges.txt, or "
            "tokenizer.model). Save the tokenizer with tokenizer.save_pretrained(folder)."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001
        refuse_remote_code(folder)
        raise CheckpointError(f"cannot load the tokenizer in {folder}: {exc}. Re-save it with tokenizer.save_pretrained(folder).") from None
    if not getattr(tok, "is_fast", False):
        raise CheckpointError(
            f"the tokenizer in {folder} is a slow (Python) tokenizer ({type(tok).__name__}); rhlens needs a fast "
            "one for offset mappings. Convert and save it: AutoTokenizer.from_pretrained(folder, use_fast=True)"
            ".save_pretrained(folder) writes tokenizer.json."
        )
    if vocab_size is not None and len(tok) > vocab_size:
        raise CheckpointError(
            f"the tokenizer in {folder} has {len(tok)} tokens but {CONFIG_FILE} vocab_size={vocab_size}: ids past "
            f"{vocab_size - 1} have no embedding. Use the tokenizer the model was trained with, or resize the "
            "embeddings (model.resize_token_embeddings(len(tokenizer))) and re-save."
        )
    return tok


# --------------------------------------------------------------------------------------------
# conversion
# --------------------------------------------------------------------------------------------
def _converter(arch: str) -> Callable[[Any, HookedTransformerConfig], dict[str, torch.Tensor]]:
    from transformer_lens.pretrained.weight_conversions import (
        convert_gpt2_weights,
        convert_llama_weights,
        convert_mistral_weights,
        convert_qwen2_weights,
    )

    return {
        "LlamaForCausalLM": convert_llama_weights,
        "MistralForCausalLM": convert_mistral_weights,
        "Qwen2ForCausalLM": convert_qwen2_weights,
        "GPT2LMHeadModel": convert_gpt2_weights,
    }[arch]


def _llama_attention_biases(hf: Any, cfg: HookedTransformerConfig, sd: dict[str, torch.Tensor]) -> None:
    """``convert_llama_weights`` writes zero attention biases; copy real ones (attention_bias=true)."""
    kv = "_" if cfg.n_key_value_heads is not None else ""
    n_kv = cfg.n_key_value_heads or cfg.n_heads
    for l, layer in enumerate(hf.model.layers):
        att = layer.self_attn
        for proj, name, n in (("q_proj", "b_Q", cfg.n_heads), ("k_proj", f"{kv}b_K", n_kv), ("v_proj", f"{kv}b_V", n_kv)):
            bias = getattr(att, proj).bias
            if bias is not None:
                sd[f"blocks.{l}.attn.{name}"] = bias.reshape(n, cfg.d_head)
        if att.o_proj.bias is not None:
            sd[f"blocks.{l}.attn.b_O"] = att.o_proj.bias


def load_hf_checkpoint(
    path: str | os.PathLike,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    fold_ln: bool = False,
    center_writing_weights: bool = False,
    center_unembed: bool = False,
    **cfg_overrides: Any,
) -> HookedTransformer:
    """A local Hugging Face checkpoint folder as a ``HookedTransformer`` with its tokenizer, offline.

    Args:
        path: a folder with ``config.json`` (``architectures``: one of
            :data:`SUPPORTED_ARCHITECTURES`), weights (``model.safetensors``, a sharded
            ``model.safetensors.index.json``, or ``pytorch_model.bin``) and a fast tokenizer
            (``tokenizer.json``).
        dtype, device: where the HookedTransformer lives.
        fold_ln, center_writing_weights, center_unembed: TransformerLens weight processing (all off
            by default, so logits and activations equal the Hugging Face model's). The choice is
            recorded with :func:`rhlens.adapter.record_weight_processing`. Value biases are never
            folded, so ``hook_v``/``hook_z`` match the Hugging Face model.
        **cfg_overrides: ``HookedTransformerConfig`` fields, e.g. ``n_ctx=8192`` or
            ``rotary_base=500000.0`` for context extension.

    Returns:
        The model in ``eval()`` mode; ``model.tokenizer`` is the folder's tokenizer (left padding).
        Logits ``[batch, pos, d_vocab]`` match ``transformers``' eager float32 forward to ~1e-6.

    Raises:
        CheckpointError: a missing file, an unsupported architecture, a self-contradicting config,
            or a tokenizer larger than the embedding; the message names the file and field.
    """
    folder = Path(path)
    raw = read_hf_config(folder)
    arch = raw["architectures"][0]
    cfg = hooked_config_from_hf(raw, source=folder / CONFIG_FILE, dtype=dtype, device=device, **cfg_overrides)
    tok = load_local_tokenizer(folder, vocab_size=cfg.d_vocab)
    if "default_prepend_bos" not in cfg_overrides:
        cfg.default_prepend_bos = tok.bos_token_id is not None
    hf = load_hf_model(folder, raw, dtype=dtype, device="cpu")
    with torch.no_grad():
        state = _converter(arch)(hf, cfg)
        if arch == "LlamaForCausalLM" and raw.get("attention_bias"):
            _llama_attention_biases(hf, cfg, state)
        state = {k: v.detach().clone() for k, v in state.items()}
    del hf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(cfg, tokenizer=tok, default_padding_side="left", move_to_device=False)
    with torch.no_grad():
        model.load_and_process_state_dict(
            state,
            fold_ln=fold_ln,
            center_writing_weights=center_writing_weights,
            center_unembed=center_unembed,
            fold_value_biases=False,
            refactor_factored_attn_matrices=False,
        )
    model.to(device, print_details=False)
    model.eval()
    record_weight_processing(
        model, fold_ln=fold_ln, center_writing_weights=center_writing_weights, center_unembed=center_unembed
    )
    attach_generation_eos(model.tokenizer, folder)  # TransformerLens keeps its own tokenizer copy
    return model
