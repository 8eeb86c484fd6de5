"""A warning when loaded weights hold NaN or infinite values (issue 22 item 16).

A model whose weights hold NaN or inf still loads and runs, but every output those weights reach is
NaN; scores, knockouts and patching then report numbers that mean nothing. The loaders
(:func:`rhlens.models.load_model`, :func:`rhlens.models.hf.read_hf_state_dict`, so
:func:`rhlens.models.load_hf_checkpoint` and :func:`rhlens.models.load_bridge`) call
:func:`warn_non_finite` on what they read, naming the folder and each such tensor.
"""

import warnings
from typing import Mapping

import torch

__all__ = ["NonFiniteWeightsWarning", "non_finite_tensors", "warn_non_finite"]

#: how many tensors a warning names before it says how many more there are
SHOWN = 8


class NonFiniteWeightsWarning(UserWarning):
    """Weights read from a folder hold NaN or infinite values."""


def non_finite_tensors(state: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """``{name: "3 NaN, 1 inf of 4096"}`` for each floating-point tensor of ``state`` holding NaN or inf.

    >>> non_finite_tensors({"a": torch.tensor([1.0, float("nan")]), "b": torch.ones(2), "i": torch.ones(2, dtype=torch.int64)})
    {'a': '1 NaN of 2'}
    """
    found = {}
    for name, tensor in state.items():
        if not torch.is_floating_point(tensor) or bool(torch.isfinite(tensor).all()):
            continue
        n_nan = int(torch.isnan(tensor).sum())
        n_inf = int(torch.isinf(tensor).sum())
        parts = [f"{n_nan} NaN"] * bool(n_nan) + [f"{n_inf} inf"] * bool(n_inf)
        found[name] = f"{', '.join(parts)} of {tensor.numel()}"
    return found


def warn_non_finite(state: Mapping[str, torch.Tensor], source: object, *, stacklevel: int = 3) -> None:
    """Warn (:class:`NonFiniteWeightsWarning`) naming ``source`` (the folder or file the weights came
    from) and every tensor of ``state`` holding NaN or inf; silent when all are finite.

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_non_finite({"embed.W_E": torch.tensor([float("inf")])}, "models/broken")
    >>> print(caught[0].message)  # doctest: +NORMALIZE_WHITESPACE
    models/broken: the weights hold NaN or infinite values in 1 tensor(s): embed.W_E (1 inf of 1); every output
    they reach will be NaN. Load the weights from an intact copy (a fine-tune whose loss diverged writes such weights).
    """
    found = non_finite_tensors(state)
    if not found:
        return
    named = [f"{name} ({what})" for name, what in list(found.items())[:SHOWN]]
    more = f" and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
    warnings.warn(
        f"{source}: the weights hold NaN or infinite values in {len(found)} tensor(s): {', '.join(named)}{more}; "
        "every output they reach will be NaN. Load the weights from an intact copy (a fine-tune whose loss "
        "diverged writes such weights).",
        NonFiniteWeightsWarning,
        stacklevel=stacklevel,
    )
