"""Adapters from every model parameterisation to the denoiser contract D(x, t) = x̂₀.

Conversions come from :mod:`theory.parameterisation` through the schedule's numeric twin, so no
formula is retyped here.
"""

from __future__ import annotations

from collections.abc import Callable

from sdebench.solvers.context import Denoiser
from sdebench.theory.parameterisation import KINDS
from sdebench.theory.schedule import Schedule


def as_denoiser(model: Callable, kind: str, schedule: Schedule) -> Denoiser:
    """Wrap a ``kind`` model (``"x0"``, ``"eps"``, ``"v"`` or ``"score"``) as a denoiser."""
    if kind not in KINDS:
        raise ValueError(f"unknown prediction kind {kind!r}; expected one of {KINDS}")
    if kind == "x0":
        return model
    convert = schedule.numeric.conversion(kind, "x0")

    def denoiser(x, t):
        return convert(x, model(x, t), t)

    return denoiser


def from_denoiser(denoiser: Denoiser, kind: str, schedule: Schedule) -> Callable:
    """The inverse adapter: a ``kind`` model from a denoiser (useful for tests and problems)."""
    if kind not in KINDS:
        raise ValueError(f"unknown prediction kind {kind!r}; expected one of {KINDS}")
    if kind == "x0":
        return denoiser
    convert = schedule.numeric.conversion("x0", kind)

    def model(x, t):
        return convert(x, denoiser(x, t), t)

    return model


def guided(denoiser: Denoiser, likelihood_score: Callable, schedule: Schedule,
           scale: float = 1.0) -> Denoiser:
    """Conditional denoiser from ∇log p_t(x|y) = ∇log p_t(x) + scale · ∇ₓ log p_t(y|x)
    (Song et al. 2021, eq. 14; scale ≠ 1 is classifier guidance, Dhariwal & Nichol 2021).

    ``likelihood_score(x, t)`` must be the *time-t* likelihood score (theory/claims/conditional.py).
    """
    to_score = schedule.numeric.conversion("x0", "score")
    to_x0 = schedule.numeric.conversion("score", "x0")

    def conditional(x, t):
        score = to_score(x, denoiser(x, t), t) + scale * likelihood_score(x, t)
        return to_x0(x, score, t)

    return conditional
