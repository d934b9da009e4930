"""Claim 9: the conditional score ∇log p_t(x | y) = ∇log p_t(x) + ∇log p_t(y | x)
(note 001, "条件生成"; note 003, "Controllable Generation"; Song et al. 2021, eq. 14).

Data x₀ ~ N(μ, v₀), observation y = A x₀ + N(0, r²), x_t = s x₀ + sσ ε. The identity holds with
the *time-t* likelihood p_t(y | x_t) = ∫ p(y | x₀) p(x₀ | x_t) dx₀; substituting p(y | x₀) at
x₀ = x̂₀(x_t) (the common approximation of Chung et al. 2023, DPS) breaks it.
"""

from __future__ import annotations

import sympy

from sdebench.theory.claims.common import MU, V0, X
from sdebench.theory.kernel import Kernel

Y = sympy.Symbol("y", real=True)
GAIN = sympy.Symbol("A", positive=True)
NOISE_VAR = sympy.Symbol("r2", positive=True)


def _joint_moments(kernel: Kernel):
    """Means and covariances of the jointly Gaussian (x_t, y)."""
    mean_x, mean_y = kernel.s * MU, GAIN * MU
    var_x = kernel.s**2 * (V0 + kernel.sigma**2)
    var_y = GAIN**2 * V0 + NOISE_VAR
    cov = kernel.s * GAIN * V0
    return mean_x, mean_y, var_x, var_y, cov


def _log_gaussian(value, mean, variance):
    return -((value - mean) ** 2) / (2 * variance) - sympy.log(2 * sympy.pi * variance) / 2


def posterior_score(kernel: Kernel) -> sympy.Expr:
    """∇ₓ log p_t(x | y) from Gaussian conditioning of (x_t, y)."""
    mean_x, mean_y, var_x, var_y, cov = _joint_moments(kernel)
    mean = mean_x + cov / var_y * (Y - mean_y)
    return sympy.diff(_log_gaussian(X, mean, var_x - cov**2 / var_y), X)


def prior_score(kernel: Kernel) -> sympy.Expr:
    mean_x, _, var_x, _, _ = _joint_moments(kernel)
    return sympy.diff(_log_gaussian(X, mean_x, var_x), X)


def time_t_likelihood_score(kernel: Kernel) -> sympy.Expr:
    """∇ₓ log p_t(y | x): y | x_t is Gaussian with the conditioned mean and variance."""
    mean_x, mean_y, var_x, var_y, cov = _joint_moments(kernel)
    mean = mean_y + cov / var_x * (X - mean_x)
    return sympy.diff(_log_gaussian(Y, mean, var_y - cov**2 / var_x), X)


def conditional_score_residual(kernel: Kernel) -> sympy.Expr:
    """∇log p_t(x|y) − [∇log p_t(x) + ∇log p_t(y|x)]."""
    return posterior_score(kernel) - (prior_score(kernel) + time_t_likelihood_score(kernel))


def plug_in_likelihood_residual(kernel: Kernel) -> sympy.Expr:
    """Negative control: ∇ₓ log p(y | x₀ = x̂₀(x_t)) in place of the time-t likelihood."""
    mean_x, _, var_x, _, _ = _joint_moments(kernel)
    x0_hat = (X + kernel.s**2 * kernel.sigma**2 * (-(X - mean_x) / var_x)) / kernel.s
    plug_in = sympy.diff(_log_gaussian(Y, GAIN * x0_hat, NOISE_VAR), X)
    return posterior_score(kernel) - (prior_score(kernel) + plug_in)
