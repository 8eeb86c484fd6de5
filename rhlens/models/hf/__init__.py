"""Local Hugging Face checkpoint folders, offline: one module per job.

- :mod:`rhlens.models.hf.folder`: ``config.json`` reading, supported architectures, :class:`CheckpointError`.
- :mod:`rhlens.models.hf.config`: ``config.json`` -> ``HookedTransformerConfig`` fields.
- :mod:`rhlens.models.hf.weights`: the weights into the Hugging Face model class (no pickle).
- :mod:`rhlens.models.hf.tokenizer`: the folder's fast tokenizer.
- :mod:`rhlens.models.hf.loader`: :func:`load_hf_checkpoint`, built from the four.

>>> from rhlens.models.hf import SUPPORTED_ARCHITECTURES
>>> "LlamaForCausalLM" in SUPPORTED_ARCHITECTURES
True
"""

from rhlens.models.hf.config import hf_config_fields, hooked_config_from_hf
from rhlens.models.hf.folder import CONFIG_FILE, SUPPORTED_ARCHITECTURES, CheckpointError, read_hf_config, refuse_remote_code
from rhlens.models.hf.loader import load_hf_checkpoint
from rhlens.models.hf.tokenizer import load_local_tokenizer
from rhlens.models.hf.weights import load_hf_model, read_hf_state_dict

__all__ = [
    "CONFIG_FILE",
    "SUPPORTED_ARCHITECTURES",
    "CheckpointError",
    "hf_config_fields",
    "hooked_config_from_hf",
    "load_hf_checkpoint",
    "load_hf_model",
    "load_local_tokenizer",
    "read_hf_config",
    "read_hf_state_dict",
    "refuse_remote_code",
]
