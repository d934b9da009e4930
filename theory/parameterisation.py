"""Conversions between score, noise (ε), denoiser (x̂0) and v predictions, derived symbolically.

Each prediction is the conditional expectation, given x_t, of a linear function of (x_0, ε)
under the kernel x_t = s x_0 + s σ ε:

* ``x0``:    x_0                                   (EDM's denoiser D, Karras et al. 2022)
* ``eps``:   ε                                     (Ho et al. 2020)
* ``v``:     (ε − σ x_0)/√(1+σ²)                   (Salimans & Ho 2022, §4; equals α ε − σ_t x_0
                                                    for VP, and *minus* EDM's F-target with
                                                    σ_data = 1: Karras et al. 2022, eq. 8)
* ``score``: −ε/(s σ)                              (Tweedie / Vincent 2011: ∇log p_t = −E[ε|x_t]/(sσ);
                                                    proven in :mod:`theory.claims.tweedie`)

A conversion from kind A to kind B solves the 2×2 linear system {x_t = s x_0 + s σ ε, a = A(x_0, ε)}
for (x_0, ε) and substitutes into B, giving ``b = c_x x_t + c_pred a``. Nothing is typed twice.
"""

from __future__ import annotations

import sympy

KINDS = ("score", "eps", "x0", "v")

_X0, _EPS, _XT, _PRED = sympy.symbols("x_0 epsilon x_t prediction", real=True)


def prediction_target(kind: str, s: sympy.Expr, sigma: sympy.Expr) -> sympy.Expr:
    """The quantity whose conditional mean a ``kind`` model predicts, as a function of (x_0, ε)."""
    targets = {
        "x0": _X0,
        "eps": _EPS,
        "v": (_EPS - sigma * _X0) / sympy.sqrt(1 + sigma**2),
        "score": -_EPS / (s * sigma),
    }
    if kind not in targets:
        raise ValueError(f"unknown prediction kind {kind!r}; expected one of {KINDS}")
    return targets[kind]


def conversion(
    kind_from: str, kind_to: str, s: sympy.Expr, sigma: sympy.Expr
) -> tuple[sympy.Expr, sympy.Expr]:
    """Coefficients (c_x, c_pred) with ``prediction_to = c_x · x_t + c_pred · prediction_from``."""
    source = prediction_target(kind_from, s, sigma)
    target = prediction_target(kind_to, s, sigma)
    solution = sympy.solve(
        [sympy.Eq(_XT, s * _X0 + s * sigma * _EPS), sympy.Eq(_PRED, source)],
        [_X0, _EPS],
        dict=True,
    )[0]
    converted = sympy.expand(target.subs(solution))
    c_x = sympy.simplify(converted.coeff(_XT))
    c_pred = sympy.simplify(converted.coeff(_PRED))
    return c_x, c_pred
