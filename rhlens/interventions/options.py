"""The values the interventions' string options may take, each listed once.

A ``Literal`` type per option and its values as a tuple (``get_args``). Torch-free, so the command
line and the study config derive their choices from here without loading a model library.

>>> KNOCKOUT_MODES, PATCH_POSITIONS
(('zero', 'mean', 'uniform'), ('all', 'prompt', 'answer', 'needle'))
"""

from typing import Literal, get_args

KnockoutMode = Literal["zero", "mean", "uniform"]
"""How :func:`rhlens.knockout` silences a head: zero its output, replace it by its mean, or make it
attend uniformly (Wu et al.'s masking)."""
KNOCKOUT_MODES: tuple[str, ...] = get_args(KnockoutMode)

KnockoutScope = Literal["decode", "all"]
"""Where a ``"uniform"`` knockout applies: decoding steps only (Wu et al.) or every position."""
KNOCKOUT_SCOPES: tuple[str, ...] = get_args(KnockoutScope)

PatchPosition = Literal["all", "prompt", "answer", "needle"]
"""Where :func:`rhlens.patch_heads` writes the source's head outputs (or pass a callable)."""
PATCH_POSITIONS: tuple[str, ...] = get_args(PatchPosition)
