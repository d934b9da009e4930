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
* ``v_flow``: ε − x₀                               (flow matching's velocity: Liu et al. 2023;
                                                    Lipman et al. 2023, eq. 23; diffusers'
                                                    ``prediction_type="flow_prediction"``, whose
                                                    step is x' = x + (τ' − τ) v, so v = dx/dτ
                                                    on x_τ = (1 − τ) x₀ + τ ε; on the ``rf``
                                                    schedules τ = sσ, the network's time)

A conversion from kind A to kind B solves the 2×2 linear system {x_t = s x_0 + s σ ε, a = A(x_0, ε)}
for (x_0, ε) and substitutes into B, giving ``b = c_x x_t + c_pred a``. Nothing is typed twice.
"""

from __future__ import annotations

import functools

import sympy

KINDS = ("score", "eps", "x0", "v", "v_flow")

_X0, _EPS, _XT, _PRED = sympy.symbols("x_0 epsilon x_t prediction", real=True)


def prediction_target(kind: str, s: sympy.Expr, sigma: sympy.Expr) -> sympy.Expr:
    """The quantity whose conditional mean a ``kind`` model predicts, as a function of (x_0, ε)."""
    targets = {
        "x0": _X0,
        "eps": _EPS,
        "v": (_EPS - sigma * _X0) / sympy.sqrt(1 + sigma**2),
        "score": -_EPS / (s * sigma),
        "v_flow": _EPS - _X0,
    }
    if kind not in targets:
        raise ValueError(f"unknown prediction kind {kind!r}; expected one of {KINDS}")
    return targets[kind]


_S, _STD = sympy.symbols("s std", positive=True)
"""Stand-ins for s(t) and the kernel's std sσ(t) while a conversion is derived."""


@functools.cache
def _conversion_in_s_and_std(kind_from: str, kind_to: str) -> tuple[sympy.Expr, sympy.Expr]:
    """(c_x, c_pred) in the symbols s and std = sσ, simplified once per pair of kinds."""
    sigma = _STD / _S
    source = prediction_target(kind_from, _S, sigma)
    target = prediction_target(kind_to, _S, sigma)
    solution = sympy.solve(
        [sympy.Eq(_XT, _S * _X0 + _STD * _EPS), sympy.Eq(_PRED, source)],
        [_X0, _EPS],
        dict=True,
    )[0]
    converted = sympy.expand(target.subs(solution))
    return sympy.simplify(converted.coeff(_XT)), sympy.simplify(converted.coeff(_PRED))


def conversion(
    kind_from: str, kind_to: str, s: sympy.Expr, sigma: sympy.Expr
) -> tuple[sympy.Expr, sympy.Expr]:
    """Coefficients (c_x, c_pred) with ``prediction_to = c_x · x_t + c_pred · prediction_from``.

    Derived and simplified once in the symbols s and std = sσ, then the schedule's s(t) and
    s(t)σ(t) are substituted: no ``sympy.simplify`` of a concrete schedule (minutes on vp0snr),
    and the coefficients are written in s and sσ, which stay finite at a pure-noise end (s = 0,
    σ = ∞; e.g. v_flow → x0 has c_x = 1/(s + sσ))."""
    c_x, c_pred = _conversion_in_s_and_std(kind_from, kind_to)
    values = {_S: s, _STD: s * sigma}
    return c_x.subs(values), c_pred.subs(values)
