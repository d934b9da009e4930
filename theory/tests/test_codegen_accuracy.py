"""Every lambdified function the solvers evaluate is accurate to a few ulps × its condition.

For each catalogue schedule, at t_min, the midpoint and t_max, the float64 torch twin of s, σ,
f, g², g, λ = −log σ, t(σ) and of the conversion coefficients the library uses (x̂₀ ↔ ε, score,
v) is compared with a 50-digit mpmath value at the same float64 argument x. A computation that
is backward stable — the exact function of an argument perturbed by a few ulps, rounded a few
times — has relative error at most C (1 + κ) u with κ = |x f'(x)/f(x)| the function's condition
number (Higham 2002, §1.6) and u = 2⁻⁵³; C = 8 allows eight such roundings. A form that cancels
is not backward stable: VP's x̂₀ → score coefficient e^B/(1 − e^B) at t_min, evaluated as
written, was 2800 (1 + κ) u off (6.5e-13 relative), the cosine schedule's cos a − cos b and
1/(1 + cos x) 1000-1500 (1 + κ) u, its acos form of t(σ) 1100.
"""

from __future__ import annotations

import functools

import mpmath
import pytest
import sympy
import torch

from sdebench.theory import SCHEDULES, T, get_schedule
from sdebench.theory.numeric import lambdify
from sdebench.theory.schedule import SIGMA, _finite_abs

UNIT_ROUNDOFF = 2.0**-53
ROUNDINGS = 8
CONVERSIONS = [("x0", "eps"), ("x0", "score"), ("x0", "v"), ("eps", "x0"), ("score", "x0"),
               ("v", "x0")]
"""The conversions the library evaluates (solvers/context.py, problems/adapters.py, training)."""

schedule = functools.cache(get_schedule)


def _targets(s, sigma):
    """Each prediction kind as a row (a, b) of a x₀ + b ε (sdebench.theory.parameterisation)."""
    root = mpmath.sqrt(1 + sigma**2)
    return {"x0": (1, 0), "eps": (0, 1), "v": (-sigma / root, 1 / root), "score": (0, -1 / (s * sigma))}


def _conversion(kind_from, kind_to, s_of_t, sigma_of_t):
    """(c_x, c_pred)(t) from the 2×2 system x_t = s x₀ + sσ ε, a = A·(x₀, ε), solved in mpmath:
    independent of SymPy's derivation."""
    def coefficients(t):
        s, sigma = s_of_t(t), sigma_of_t(t)
        targets = _targets(s, sigma)
        system = mpmath.matrix([[s, s * sigma], list(targets[kind_from])])
        row = mpmath.matrix([list(targets[kind_to])]) * mpmath.inverse(system)
        return row[0, 0], row[0, 1]
    return (lambda t: coefficients(t)[0]), (lambda t: coefficients(t)[1])


def _check(numeric, exact, x: float, label: str) -> None:
    got = float(numeric(torch.tensor(x, dtype=torch.float64)))
    with mpmath.workdps(50):
        x = mpmath.mpf(x)
        value = exact(x)
        if value == 0:
            assert got == 0, label
            return
        kappa = abs(x * mpmath.diff(exact, x) / value)
        error = abs((got - value) / value)
        assert error <= ROUNDINGS * (1 + kappa) * UNIT_ROUNDOFF, (
            f"{label}: relative error {float(error):.3g} > {ROUNDINGS}(1 + κ)u, κ = {float(kappa):.3g}")


def _times(sched, finite_at_pure_noise: bool = False):
    """t_min, the midpoint and t_max — without t_max at a pure-noise end (s = 0, σ = ∞) unless
    the function stays finite there."""
    ends = [float(sched.t_max)] if finite_at_pure_noise or not sched.pure_noise_end else []
    return [float(sched.t_min), float((sched.t_min + sched.t_max) / 2), *ends]


FINITE_AT_PURE_NOISE = ("s", "kernel_std")


@pytest.mark.parametrize("name", SCHEDULES.names())
def test_schedule_functions_match_mpmath(name):
    sched = schedule(name)
    for attr in ("s", "sigma", "kernel_std", "f", "g2", "g", "half_log_snr"):
        exact = sympy.lambdify(T, getattr(sched, attr), "mpmath")
        for t in _times(sched, attr in FINITE_AT_PURE_NOISE):
            _check(getattr(sched.numeric, attr), exact, t, f"{name} {attr}(t = {t})")


@pytest.mark.parametrize("name", SCHEDULES.names())
def test_pf_coefficients_match_mpmath(name):
    """The PF-ODE drift a_x x + a_D x̂₀ that every ODE solver evaluates, to a few ulps of its own
    size: x and x̂₀ are of the same magnitude, so the drift's error is (|Δa_x| + |Δa_D|)|x|, and
    each coefficient is judged against the drift's largest term — max(|a_x|, |a_D|, |f|,
    ½g²|c_x|, |ṡ|) — not its own value (a_x = f − ½g²c_x is a tiny difference at large t on VP,
    4·10⁻⁵ of f, and 0 at vp0snr's pure-noise end). Bound: C (1 + κ) u × that size, κ the
    largest condition number of the terms; a_x is never evaluated where σ = 0."""
    sched = schedule(name)
    zero_sigma_start = sched.sigma.subs(T, sched.t_min) == 0  # a_x infinite there, never used
    terms = [sched.pf_coefficients[0], sched.pf_coefficients[1], sched.f, sched.ds,
             sched.g2 / (2 * sched.kernel_std**2)]  # ½g²|c_x| = g²/(2(sσ)²)
    functions = [sympy.lambdify(T, term, "mpmath") for term in terms]
    times = _times(sched, finite_at_pure_noise=True)[1 if zero_sigma_start else 0:]
    for index in range(2):
        exact = functions[index]
        for t in times:
            got = float(sched.numeric.pf_coefficients(torch.tensor(t, dtype=torch.float64))[index])
            with mpmath.workdps(50):
                x = mpmath.mpf(t)
                scale = max(_finite_abs(fn, x) for fn in functions)
                kappa = max(abs(x * mpmath.diff(fn, x) / fn(x)) for fn in functions
                            if _finite_abs(fn, x) > 0)
                error = abs(got - exact(x)) / scale
                assert error <= ROUNDINGS * (1 + kappa) * UNIT_ROUNDOFF, (
                    f"{name} pf_coefficients[{index}](t = {t}): error {float(error):.3g} of the "
                    f"drift's scale > {ROUNDINGS}(1 + κ)u, κ = {float(kappa):.3g}")


@pytest.mark.parametrize("name", SCHEDULES.names())
def test_inverse_sigma_matches_mpmath(name):
    sched = schedule(name)
    exact = sympy.lambdify(SIGMA, sched.sigma_inverse, "mpmath")
    for t in _times(sched):
        sigma = float(sched.numeric.sigma(torch.tensor(t, dtype=torch.float64)))
        _check(sched.numeric.sigma_inv, exact, sigma, f"{name} t(σ = {sigma})")


@pytest.mark.parametrize("name", SCHEDULES.names())
@pytest.mark.parametrize("kinds", CONVERSIONS, ids="->".join)
def test_conversion_coefficients_match_mpmath(name, kinds):
    sched = schedule(name)
    s, sigma = (sympy.lambdify(T, e, "mpmath") for e in (sched.s, sched.sigma))
    numeric = sched.numeric.conversion_coefficients(*kinds)
    for label, fn, exact in zip(("c_x", "c_pred"), numeric, _conversion(*kinds, s, sigma), strict=True):
        for t in _times(sched):
            _check(fn, exact, t, f"{name} {'->'.join(kinds)} {label}(t = {t})")


B = sympy.Symbol("B", positive=True)


@pytest.mark.parametrize("expr", [
    sympy.exp(B) / (1 - sympy.exp(B)), 1 - sympy.exp(-B), sympy.exp(-B) - 1, 1 / (sympy.exp(B) - 1),
    sympy.log(1 - sympy.exp(-B)), sympy.sqrt(sympy.exp(B) - 1), 3 * sympy.exp(B) - 3,
    sympy.log(1 + B), 1 - sympy.cos(B), 1 / (1 + sympy.cos(sympy.pi - B)),
    sympy.cos(B + sympy.Rational(1, 10)) - sympy.cos(sympy.Rational(1, 10)),
], ids=str)
@pytest.mark.parametrize("b", [1e-10, 1e-4, 0.5])
def test_cancelling_forms_are_rewritten(expr, b):
    """The forms that cancel as B → 0 evaluate to a few ulps × their condition number."""
    _check(lambdify(expr, variable=B), sympy.lambdify(B, expr, "mpmath"), b, f"{expr} at B = {b}")
