"""Flow matching as a member of the (s, σ) family: the claims behind the ``rf`` and ``vp0snr``
schedules (issue "flow matching and zero terminal SNR").

* The PF-ODE drift is the conditional mean of the path velocity: for x_t = s x₀ + sσ ε,
  f x − ½ g² ∇log p = E[ṡ x₀ + (sσ)˙ ε | x_t] (Lipman et al. 2023, Thm. 1; Albergo &
  Vanden-Eijnden 2023, eq. 2.8) — so on ``rf`` (ṡ = −1, (sσ)˙ = 1) the flow ODE dx/dt = v with
  v = E[ε − x₀ | x_t] *is* the PF-ODE.
* Euler's method on the flow ODE in τ = sσ (diffusers' sigmas) is DDIM on the same grid, for any
  shift; in t it is DDIM only without a shift.
* Conditional flow matching is denoising score matching reweighted: per sample,
  ‖v̂ − (ṡ x₀ + (sσ)˙ ε)‖² = (g²/2)² ‖ŝ − ∇log p(x_t|x₀)‖², i.e. the weight g⁴/4 (on ``rf``:
  t²/(1 − t)²); both losses differ from their marginal forms by a constant of θ, which for data
  N(μ, v₀) is w(t) Var[x₀|x_t] with w = (sσ̇/σ)² for the velocity loss (stated below, proven in
  theory/tests/test_flow.py).
* A time shift reparameterises time: rf with shift k at t is rf at τ_k(t) = kt/(1 + (k − 1)t),
  and within the rf family s = 1/(1 + σ), so equal SNR means the same kernel and marginal.
* Zero terminal SNR VP keeps s²(1 + σ²) = 1 (variance preserving) with s(1) = 0.
"""

from __future__ import annotations

import sympy

from sdebench.theory.claims.common import V0, X
from sdebench.theory.kernel import Kernel, T

X0_HAT, EPS_HAT = sympy.symbols("x0_hat epsilon_hat", real=True)
"""A prediction pair tied by x = s x̂₀ + sσ ε̂ (one of them is eliminated)."""

X0, EPS = sympy.symbols("x_0 epsilon", real=True)
"""A data point and its noise."""

NEXT = sympy.Symbol("t_next", positive=True)
"""The next grid time of a step."""


def path_velocity(kernel: Kernel, x0, eps) -> sympy.Expr:
    """d/dt of x_t = s x₀ + sσ ε at fixed (x₀, ε): ṡ x₀ + (sσ)˙ ε."""
    return kernel.ds * x0 + sympy.diff(kernel.kernel_std, T) * eps


def _eps_of(kernel: Kernel, x0_hat) -> sympy.Expr:
    """ε̂ with x = s x̂₀ + sσ ε̂."""
    return (X - kernel.s * x0_hat) / kernel.kernel_std


def pf_drift_is_mean_velocity_residual(kernel: Kernel) -> sympy.Expr:
    """f x − ½ g² ∇log p − E[path velocity | x], with ∇log p = −ε̂/(sσ) and the velocity's mean
    ṡ x̂₀ + (sσ)˙ ε̂ (linear in (x₀, ε), so its conditional mean is that of the predictions)."""
    eps_hat = _eps_of(kernel, X0_HAT)
    drift = kernel.f * X - kernel.g2 * (-eps_hat / kernel.kernel_std) / 2
    return drift - path_velocity(kernel, X0_HAT, eps_hat)


def pf_coefficients_residuals(kernel: Kernel) -> tuple[sympy.Expr, sympy.Expr]:
    """The (s, sσ) form of the PF drift (:attr:`Kernel.pf_coefficients`) minus f − ½g²c_x and
    −½g²c_D, where ∇log p = c_x x + c_D x̂₀ = (s x̂₀ − x)/(s²σ²)."""
    a_x, a_denoised = kernel.pf_coefficients
    c_x, c_denoised = -1 / kernel.kernel_std**2, kernel.s / kernel.kernel_std**2
    return a_x - (kernel.f - kernel.g2 * c_x / 2), a_denoised + kernel.g2 * c_denoised / 2


def rf_velocity_is_flow_prediction_residual(kernel: Kernel) -> sympy.Expr:
    """On unshifted rf the path velocity is ε − x₀, the target of ``v_flow`` (Liu et al. 2023)."""
    return path_velocity(kernel, X0, EPS) - (EPS - X0)


def euler_in_tau_minus_ddim(kernel: Kernel, tau) -> sympy.Expr:
    """One Euler step x' = x + (τ' − τ) v̂ of the flow ODE in the noise time τ (diffusers'
    FlowMatchEulerDiscreteScheduler.step) minus DDIM's x' = s' x̂₀ + s'σ' ε̂ (Song et al. 2021,
    eq. 12), for an rf-family kernel where s = 1 − τ and sσ = τ; ``tau`` is τ(t)."""
    eps_hat = _eps_of(kernel, X0_HAT)
    next_ = {T: NEXT}
    euler = X + (tau.subs(next_) - tau) * (eps_hat - X0_HAT)
    ddim = kernel.s.subs(next_) * X0_HAT + kernel.kernel_std.subs(next_) * eps_hat
    return euler - ddim


def euler_in_t_minus_ddim(kernel: Kernel) -> sympy.Expr:
    """Euler in t on the PF-ODE, x' = x + (t' − t)(a_x x + a_D x̂₀), minus DDIM on the same grid."""
    a_x, a_denoised = kernel.pf_coefficients
    next_ = {T: NEXT}
    euler = X + (NEXT - T) * (a_x * X + a_denoised * X0_HAT)
    ddim = kernel.s.subs(next_) * X0_HAT + kernel.kernel_std.subs(next_) * _eps_of(kernel, X0_HAT)
    return euler - ddim


def cfm_minus_weighted_dsm(kernel: Kernel) -> sympy.Expr:
    """‖v̂ − v‖² − (g²/2)² ‖ŝ − ∇log p(x_t|x₀)‖² per sample (one coordinate), with v̂ the
    velocity of the prediction x̂₀ (ε̂ from x), v the path velocity of (x₀, ε), ŝ = (s x̂₀ − x)/(sσ)²
    and ∇log p(x_t|x₀) = (s x₀ − x)/(sσ)² (Vincent 2011)."""
    eps_of_x0 = _eps_of(kernel, X0)
    v_hat = path_velocity(kernel, X0_HAT, _eps_of(kernel, X0_HAT))
    v = path_velocity(kernel, X0, eps_of_x0)
    std2 = kernel.kernel_std**2
    dsm = ((kernel.s * X0_HAT - X) / std2 - (kernel.s * X0 - X) / std2) ** 2
    return (v_hat - v) ** 2 - (kernel.g2 / 2) ** 2 * dsm


def cfm_constant_residual(kernel: Kernel) -> sympy.Expr:
    """For data N(μ, v₀): min over predictions of the CFM loss, Var[ṡ x₀ + (sσ)˙ ε | x_t] (jointly
    Gaussian: Var v − Cov(v, x)²/Var x), minus (sσ̇/σ)² Var[x₀|x_t] = (sσ̇/σ)² v₀σ²/(v₀ + σ²)."""
    ds, dstd, s, std = kernel.ds, sympy.diff(kernel.kernel_std, T), kernel.s, kernel.kernel_std
    var_v = ds**2 * V0 + dstd**2
    cov = ds * s * V0 + dstd * std
    var_x = s**2 * V0 + std**2
    sigma = kernel.sigma
    weight = (s * kernel.dsigma / sigma) ** 2
    return var_v - cov**2 / var_x - weight * V0 * sigma**2 / (V0 + sigma**2)


def shift_reparameterisation_residuals(shifted: Kernel, unshifted: Kernel, shift) -> tuple:
    """s_k(t) − s_1(τ_k(t)) and σ_k(t) − σ_1(τ_k(t)), τ_k(t) = kt/(1 + (k − 1)t) (Esser et al.
    2024, eq. 23): the shifted schedule is the unshifted one at another time."""
    tau = shift * T / (1 + (shift - 1) * T)
    return (shifted.s - unshifted.s.subs(T, tau), shifted.sigma - unshifted.sigma.subs(T, tau))


def rf_family_snr_residual(kernel: Kernel) -> sympy.Expr:
    """s − 1/(1 + σ) on an rf schedule of any shift: s is a function of σ alone, so two rf
    schedules at equal σ (equal SNR) have the same kernel, hence the same marginal p."""
    return kernel.s - 1 / (1 + kernel.sigma)


def variance_preserving_residual(kernel: Kernel) -> sympy.Expr:
    """s²(1 + σ²) − 1 (VP: ᾱ + β̄ = 1)."""
    return kernel.s**2 * (1 + kernel.sigma**2) - 1

