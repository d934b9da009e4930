"""Claim 8: DDIM (η = 0) is Euler's method on the probability-flow ODE in the variables
(σ, y = x/s), equals DPM-Solver-1, and differs from Euler in t by a term of order Δσ².

With y = x/s and ε̂ = −s σ ∇log p, the PF-ODE dx/dt = f x − ½ g² ∇log p becomes
dy/dσ = ε̂(x, t) (Karras et al. 2022, eq. 4 with s = 1; Lu et al. 2022, eq. 3.4).
"""

from __future__ import annotations

import sympy

from sdebench.theory.claims.common import X
from sdebench.theory.kernel import Kernel, T, generic_kernel

EPS_HAT = sympy.Symbol("epsilon_hat", real=True)
"""The model's noise prediction ε̂, frozen over a step."""

STEP = sympy.Symbol("Delta", real=True)
"""The time step Δ = t_next − t."""


def pf_ode_in_sigma_residual(kernel: Kernel) -> sympy.Expr:
    """dy/dσ − ε̂ along the PF-ODE, where dy/dσ = (ẋ s − x ṡ)/(s² σ̇)."""
    score = -EPS_HAT / (kernel.s * kernel.sigma)
    dx_dt = kernel.f * X - kernel.g2 * score / 2
    dy_dsigma = (dx_dt * kernel.s - X * kernel.ds) / (kernel.s**2 * kernel.dsigma)
    return dy_dsigma - EPS_HAT


def euler_in_sigma_step(s, sigma, s_next, sigma_next) -> sympy.Expr:
    """One Euler step of dy/dσ = ε̂ from σ to σ_next, returned in x = s y."""
    return s_next * (X / s + (sigma_next - sigma) * EPS_HAT)


def ddim_step_vp(alpha_bar, alpha_bar_next) -> sympy.Expr:
    """DDIM with η = 0 (Song, Meng & Ermon 2021, eq. 12) in ᾱ notation:
    x' = √ᾱ' (x − √(1−ᾱ) ε̂)/√ᾱ + √(1−ᾱ') ε̂."""
    x0_hat = (X - sympy.sqrt(1 - alpha_bar) * EPS_HAT) / sympy.sqrt(alpha_bar)
    return sympy.sqrt(alpha_bar_next) * x0_hat + sympy.sqrt(1 - alpha_bar_next) * EPS_HAT


def dpm_solver_1_step(s, sigma, s_next, sigma_next) -> sympy.Expr:
    """DPM-Solver-1 (Lu et al. 2022, eq. 3.7): x' = (s'/s) x − s'σ'(eʰ − 1) ε̂, h = λ' − λ,
    λ = −log σ (α_t = s, σ_t = sσ in the paper's notation)."""
    h = sympy.log(sigma) - sympy.log(sigma_next)
    return s_next / s * X - s_next * sigma_next * (sympy.exp(h) - 1) * EPS_HAT


def _vp_variables():
    alpha_bar, alpha_bar_next = sympy.symbols("alphabar alphabar_next", positive=True)
    s, s_next = sympy.sqrt(alpha_bar), sympy.sqrt(alpha_bar_next)
    sigma = sympy.sqrt((1 - alpha_bar) / alpha_bar)
    sigma_next = sympy.sqrt((1 - alpha_bar_next) / alpha_bar_next)
    return alpha_bar, alpha_bar_next, (s, sigma, s_next, sigma_next)


def ddim_equals_euler_in_sigma_residual() -> sympy.Expr:
    """DDIM(η=0) − Euler in (σ, x/s) for a VP kernel (s² = ᾱ, σ² = (1−ᾱ)/ᾱ)."""
    alpha_bar, alpha_bar_next, variables = _vp_variables()
    return ddim_step_vp(alpha_bar, alpha_bar_next) - euler_in_sigma_step(*variables)


def ddim_equals_dpm_solver_1_residual() -> sympy.Expr:
    """DDIM(η=0) − DPM-Solver-1 for a VP kernel."""
    alpha_bar, alpha_bar_next, variables = _vp_variables()
    return ddim_step_vp(alpha_bar, alpha_bar_next) - dpm_solver_1_step(*variables)


def ddim_minus_euler_in_t(kernel: Kernel, order: int = 3) -> list[sympy.Expr]:
    """Taylor coefficients in Δ of [DDIM step] − [Euler step in t] for the frozen ε̂.

    Coefficients 0 and 1 vanish (both methods are consistent); coefficient 2 does not in general,
    so the methods differ by O(Δ²) = O(Δσ²) per step (Δσ = σ̇ Δ + O(Δ²)). It vanishes exactly
    when s is constant and σ is linear in t (EDM), where the two methods coincide.

    The series is taken once for undefined s(t), σ(t) and the kernel substituted afterwards
    (``sympy.series`` on concrete schedules takes minutes).
    """
    generic = generic_kernel()
    subs_next = {T: T + STEP}
    ddim = euler_in_sigma_step(
        generic.s, generic.sigma, generic.s.subs(subs_next), generic.sigma.subs(subs_next)
    )
    score = -EPS_HAT / (generic.s * generic.sigma)
    euler_t = X + STEP * (generic.f * X - generic.g2 * score / 2)
    series = sympy.series(ddim - euler_t, STEP, 0, order).removeO()
    concrete = {generic.s: kernel.s, generic.sigma: kernel.sigma}
    return [
        sympy.simplify(series.coeff(STEP, k)).subs(concrete).doit() for k in range(order)
    ]
