"""Claim 6: Tweedie's formula, the parameterisation identities and DSM = ESM + constant.

For x_t = s x₀ + sσ ε the optimal predictions are conditional expectations given x_t; Tweedie's
formula (Efron 2011, eq. 1.2; note 000, §3; note 002, §7–8) gives

    E[x₀ | x_t] = (x_t + s² σ² ∇log p_t(x_t)) / s,       E[ε | x_t] = −s σ ∇log p_t(x_t).

The posterior is computed here *independently* of the score, by Bayes' rule per mixture component.
"""

from __future__ import annotations

import functools
import itertools

import sympy

from sdebench.theory.claims.common import MU, MU2, V0, V2, WEIGHT, X, gaussian_marginal, score
from sdebench.theory.kernel import Kernel, generic_kernel
from sdebench.theory.parameterisation import KINDS, conversion, prediction_target

_X0, _EPS = sympy.symbols("x_0 epsilon", real=True)


def _component_posterior_mean(kernel: Kernel, mu: sympy.Expr, v0: sympy.Expr) -> sympy.Expr:
    """E[x₀ | x_t] for prior N(μ, v₀) and observation x_t/s = x₀ + σ ε (conjugate update)."""
    precision = 1 / v0 + 1 / kernel.sigma**2
    return (mu / v0 + X / (kernel.s * kernel.sigma**2)) / precision


def posterior_mean_x0(kernel: Kernel, data: str) -> sympy.Expr:
    """E[x₀ | x_t = x] by Bayes' rule (mixture: responsibilities times component means)."""
    if data == "gaussian":
        return _component_posterior_mean(kernel, MU, V0)
    weighted = [
        (WEIGHT * gaussian_marginal(kernel, MU, V0), _component_posterior_mean(kernel, MU, V0)),
        ((1 - WEIGHT) * gaussian_marginal(kernel, MU2, V2),
         _component_posterior_mean(kernel, MU2, V2)),
    ]
    total = sum(weight for weight, _ in weighted)
    return sum(weight * mean for weight, mean in weighted) / total


def marginal(kernel: Kernel, data: str) -> sympy.Expr:
    if data == "gaussian":
        return gaussian_marginal(kernel)
    return WEIGHT * gaussian_marginal(kernel) + (1 - WEIGHT) * gaussian_marginal(kernel, MU2, V2)


def exact_prediction(kernel: Kernel, data: str, kind: str) -> sympy.Expr:
    """The optimal ``kind`` prediction: score = ∇log p_t, others = E[target | x_t] by Bayes."""
    if kind == "score":
        return score(marginal(kernel, data))
    x0_hat = posterior_mean_x0(kernel, data)
    eps_hat = (X / kernel.s - x0_hat) / kernel.sigma
    return prediction_target(kind, kernel.s, kernel.sigma).subs({_X0: x0_hat, _EPS: eps_hat})


def tweedie_denoiser_residual(kernel: Kernel, data: str) -> sympy.Expr:
    """E[x₀|x_t] − (x_t + s²σ² ∇log p_t)/s."""
    p = marginal(kernel, data)
    return posterior_mean_x0(kernel, data) - (X + kernel.s**2 * kernel.sigma**2 * score(p)) / kernel.s


def noise_prediction_residual(kernel: Kernel, data: str) -> sympy.Expr:
    """E[ε|x_t] − (−s σ ∇log p_t): noise prediction is score estimation (note 000, §3.4)."""
    return exact_prediction(kernel, data, "eps") + kernel.s * kernel.sigma * exact_prediction(
        kernel, data, "score"
    )


@functools.cache
def conversion_residuals(kernel: Kernel, data: str) -> dict[tuple[str, str], sympy.Expr]:
    """For every ordered pair (a, b): converting the exact a-prediction gives the exact b one
    (cached: a test of one pair would otherwise derive all of them again)."""
    exact = {kind: exact_prediction(kernel, data, kind) for kind in KINDS}
    residuals = {}
    for kind_from, kind_to in itertools.permutations(KINDS, 2):
        c_x, c_pred = conversion(kind_from, kind_to, kernel.s, kernel.sigma)
        residuals[(kind_from, kind_to)] = c_x * X + c_pred * exact[kind_from] - exact[kind_to]
    return residuals


def note002_x0_recovery_residual(kernel: Kernel) -> sympy.Expr:
    """Negative control: note 002 §8 writes x̂₀ = (x_t − σ_t² s_θ)/α for VP (σ_t = sσ, α = s).
    The sign of the score term is wrong; the residual against Tweedie is not zero."""
    p = gaussian_marginal(kernel)
    note = (X - kernel.s**2 * kernel.sigma**2 * score(p)) / kernel.s
    return posterior_mean_x0(kernel, "gaussian") - note


def _standard_normal_expectation(polynomial: sympy.Expr, normals: list[sympy.Symbol]):
    """E[polynomial(z)] for independent z ~ N(0, 1): E[zⁿ] = (n−1)!! for even n, else 0."""
    poly = sympy.Poly(sympy.expand(polynomial), *normals)
    total = sympy.Integer(0)
    for powers, coefficient in poly.terms():
        moment = sympy.Integer(1)
        for n in powers:
            moment *= 0 if n % 2 else sympy.factorial2(n - 1)
        total += coefficient * moment
    return total


def dsm_minus_esm(kernel: Kernel) -> tuple[sympy.Expr, tuple[sympy.Symbol, sympy.Symbol]]:
    """L_DSM − L_ESM for Gaussian data N(μ, v₀) and the affine model s_θ(x) = a x + b
    (Vincent 2011, eq. 11; note 000, §3.3). Returns the difference and (a, b); the claim is that
    it does not depend on (a, b).

    The Gaussian expectations are taken once on the generic kernel and the schedule's s(t), σ(t)
    substituted after: on vp0snr's s (a difference of exponentials) the polynomial expansion
    does not finish in minutes."""
    generic = generic_kernel()
    difference, parameters = _dsm_minus_esm(generic)
    if kernel.s == generic.s and kernel.sigma == generic.sigma:
        return difference, parameters
    return difference.subs({generic.s: kernel.s, generic.sigma: kernel.sigma}).doit(), parameters


@functools.cache
def _dsm_minus_esm(kernel: Kernel) -> tuple[sympy.Expr, tuple[sympy.Symbol, sympy.Symbol]]:
    a, b = sympy.symbols("a b", real=True)
    z_data, z_noise = sympy.symbols("z_1 z_2", real=True)
    x0 = MU + sympy.sqrt(V0) * z_data
    xt = kernel.s * x0 + kernel.s * kernel.sigma * z_noise
    model = a * xt + b
    conditional_score = -z_noise / (kernel.s * kernel.sigma)
    marginal_score = -(xt - kernel.s * MU) / (kernel.s**2 * (V0 + kernel.sigma**2))
    dsm = _standard_normal_expectation((model - conditional_score) ** 2 / 2, [z_data, z_noise])
    esm = _standard_normal_expectation((model - marginal_score) ** 2 / 2, [z_data, z_noise])
    return dsm - esm, (a, b)
