"""Why a grid uniform in t costs λ-step methods their order from pure noise, and which grids
keep it (issue "flow matching and zero terminal SNR"; ``graded`` in sdebench.solvers.grids).

An exponential integrator of order p in λ = −log σ (DPM-Solver++(2M), Lu et al. 2022b, eq. 9;
UniPC, Zhao et al. 2023) makes the local error s(λ_{k+1}) h_k^{p+1} ∂ᵖ_λ x̂₀ / (p+1)! (+ higher
order) in its step of size h_k = λ_{k+1} − λ_k (Lu et al. 2022b, App. B). Three facts set its
size near a pure-noise start (λ → −∞), each proven below:

1. ``s ~ e^{λ}``: on rf and vp0snr, s e^{−λ} has a finite non-zero limit at pure noise (rf:
   s = 1/(1 + σ); vp0snr: s² (1 + σ²) = 1).
2. ``∂ᵏ_λ x̂₀ ~ e^{λ}`` along the flow: for data N(μ, v₀) the PF-ODE carries quantiles,
   x_λ = s (μ + √(v₀ + σ²) z), so x̂₀ = μ + v₀ z/√(v₀ + σ²) = μ + v₀ z e^{λ}/√(1 + v₀ e^{2λ}),
   and e^{−λ} ∂ᵏ_λ x̂₀ → v₀ z for every k ≥ 1.
3. The flow map from λ to the data is O(1) there (s σ → 1 on rf), so the global error is the sum
   of the local ones, Σ_k e^{2λ_k} h_k^{p+1}.

On a grid whose points near the noise satisfy e^{aλ_k} ∝ k/N (so h_k ≈ log(1 + 1/k)/a), the
k-th term is ∝ N^{−2/a} k^{2/a − p − 1}, and

    Σ_{k≤N} N^{−2/a} k^{2/a − p − 1}  ~  N^{−p}        if p < 2/a,
                                       ~  N^{−p} log N  if p = 2/a,
                                       ~  N^{−2/a}      if p > 2/a.

A grid uniform in t has a = 1 (e^{λ}/(1 − t) has a finite limit: fact 4 below), so
DPM-Solver++(2M) converges like N^{−2} log N (measured: local slopes 2 − 1/ln N, issue #25) and a
third-order λ-method like N^{−2}. A time shift only rescales e^{λ} (a stays 1), so SD3/Flux grids
share this. The ``graded`` grid has a = 1/2: every order below 4 is kept.
"""

from __future__ import annotations

import sympy

from sdebench.theory.claims.common import V0
from sdebench.theory.kernel import Kernel, T

LAM = sympy.Symbol("lambda", real=True)
"""The half log-SNR λ = −log σ."""

Z = sympy.Symbol("z", real=True)
"""The quantile of a PF-ODE trajectory: x_λ = s (μ + √(v₀ + σ²) z)."""

N = sympy.Symbol("N", positive=True, integer=True)


def scale_over_exp_lambda_at_pure_noise(kernel: Kernel) -> sympy.Expr:
    """lim_{t → 1⁻} s(t) e^{−λ(t)} = lim s σ (fact 1)."""
    return sympy.limit(sympy.simplify(kernel.s * kernel.sigma), T, 1, "-")


def exp_lambda_over_remaining_time_at_pure_noise(kernel: Kernel) -> sympy.Expr:
    """lim_{t → 1⁻} e^{λ(t)}/(1 − t) = lim 1/(σ (1 − t)) (fact 4: a grid uniform in t is uniform
    in e^{λ} near the noise, a = 1)."""
    return sympy.limit(sympy.simplify(1 / (kernel.sigma * (1 - T))), T, 1, "-")


def gaussian_denoiser_along_the_flow() -> sympy.Expr:
    """x̂₀ − μ on the PF trajectory of quantile z, data N(μ, v₀): v₀ z e^{λ}/√(1 + v₀ e^{2λ})."""
    return V0 * Z * sympy.exp(LAM) / sympy.sqrt(1 + V0 * sympy.exp(2 * LAM))


def denoiser_derivative_over_exp_lambda_at_pure_noise(order: int) -> sympy.Expr:
    """lim_{λ → −∞} e^{−λ} ∂ᵏ_λ x̂₀ (fact 2; the claim: v₀ z for every k ≥ 1)."""
    derivative = sympy.diff(gaussian_denoiser_along_the_flow(), LAM, order)
    return sympy.limit(sympy.simplify(derivative * sympy.exp(-LAM)), LAM, -sympy.oo)


def noise_end_error_sum(order: int, a: sympy.Expr) -> sympy.Expr:
    """Σ_{k=1}^{N} N^{−2/a} k^{2/a − p − 1}: the local errors of an order-p λ-method near pure
    noise on a grid with e^{aλ_k} ∝ k/N, up to a constant factor."""
    a = sympy.sympify(a)
    # Σ_{k≤N} k^{−m} = H_N^{(m)}, the generalised harmonic number (a polynomial in N for m ≤ 0)
    return N ** (-2 / a) * sympy.expand_func(sympy.harmonic(N, order + 1 - 2 / a))


def error_sum_rate(order: int, a: sympy.Expr) -> sympy.Expr:
    """The claimed rate of :func:`noise_end_error_sum`: N^{−min(p, 2/a)}, times log N at p = 2/a."""
    a = sympy.sympify(a)
    rate = N ** (-sympy.Min(order, 2 / a))
    return rate * sympy.log(N) if sympy.Eq(order, 2 / a) is sympy.true else rate
