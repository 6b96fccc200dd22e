"""One exception hierarchy for the whole package.

Every public entry point raises a subclass of :class:`HedonicError`, so callers can
catch everything the package raises with one ``except`` clause. The subclasses also
derive from the matching built-in (``ValueError``, ``FileNotFoundError`` ...), so code
that already catches those keeps working.
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "ConfigError",
    "HedonicError",
    "InputError",
    "LinearReadoutError",
    "UnsupportedModelError",
]


class HedonicError(Exception):
    """Base class of every error raised by ``hedonic_neurons``."""


class InputError(HedonicError, ValueError):
    """An argument has the wrong type, shape, or value.

    The message names the argument, what was received and what was expected.
    """


class ConfigError(HedonicError, ValueError):
    """A configuration key is unknown or has a value outside its allowed set."""


class ArtifactError(HedonicError, OSError):
    """A file on disk is missing, truncated, inconsistent, or malformed."""


class UnsupportedModelError(HedonicError, TypeError):
    """The model's architecture family is not one the package knows how to read."""


class LinearReadoutError(HedonicError, ValueError):
    """An ablation valuation was asked of a readout that is linear in the players.

    With a linear readout ``f(y) = w^T y + b`` and additive ablation
    ``y_{-S} = y - sum_{k in S} delta_k`` (docs/method.md §1, R1), every pairwise interaction
    ``f(y) - f(y - d_i) - f(y - d_j) + f(y - d_i - d_j)`` is identically zero, so the
    synergy matrix would be floating-point noise (docs/method.md §2).
    """
