"""Issue 22 item 16: weights holding NaN or inf load with a warning naming the file and each tensor
(a model with such weights runs, and every output they reach is NaN)."""

import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file

from rhlens.models import load_hf_checkpoint, load_model, save_model, tiny_llama
from rhlens.models.finite import NonFiniteWeightsWarning


def _poison(path, values):
    """Rewrite the safetensors file ``path`` with ``values[name] = (index, value)`` written in."""
    state = load_file(str(path))
    for name, (index, value) in values.items():
        state[name].view(-1)[index] = value
    save_file(state, str(path))
    return state


def _non_finite_warnings(load):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load()
    return [str(w.message) for w in caught if issubclass(w.category, NonFiniteWeightsWarning)]


def test_saved_model_with_nan_or_inf_weights_warns_naming_file_and_tensors(tok, tmp_path):
    folder = save_model(tiny_llama(tokenizer=tok), tmp_path / "model")
    weights = folder / "model.safetensors"
    assert _non_finite_warnings(lambda: load_model(folder)) == []  # intact weights: silent
    names = sorted(k for k, v in load_file(str(weights)).items() if v.is_floating_point())
    first, second = names[0], names[-1]
    _poison(weights, {first: (0, float("nan")), second: (1, float("-inf"))})
    messages = _non_finite_warnings(lambda: load_model(folder))
    assert len(messages) == 1
    assert messages[0].startswith(f"{weights}: the weights hold NaN or infinite values in 2 tensor(s): ")
    assert f"{first} (1 NaN of " in messages[0] and f"{second} (1 inf of " in messages[0]


def test_hf_checkpoint_with_nan_weights_warns_naming_file_and_tensor(save_hf):
    folder, _ = save_hf("llama")
    weights = folder / "model.safetensors"
    name = "model.layers.1.self_attn.q_proj.weight"
    _poison(weights, {name: (3, float("nan")), "model.norm.weight": (0, float("inf"))})
    messages = _non_finite_warnings(lambda: load_hf_checkpoint(folder))
    assert messages and messages[0].startswith(f"{weights}: the weights hold NaN or infinite values in 2 tensor(s)")
    assert f"{name} (1 NaN of " in messages[0] and "model.norm.weight (1 inf of 32)" in messages[0]


def test_many_tensors_are_counted_not_all_listed():
    from rhlens.models.finite import warn_non_finite

    state = {f"w{i:02d}": torch.tensor([float("nan")]) for i in range(11)}
    with pytest.warns(NonFiniteWeightsWarning, match=r"in 11 tensor\(s\): w00 .* w07 \(1 NaN of 1\) and 3 more;"):
        warn_non_finite(state, "folder")
