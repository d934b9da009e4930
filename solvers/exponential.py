"""Exponential integrators in λ = −log σ: DDIM, DPM-Solver-2/3, DPM-Solver++(2M), its SDE variant
and UniPC, all built on one first-order exponential update.

Notation of Lu et al. 2022 translated to the kernel x_t = s x₀ + sσ ε: their α_t = s,
σ_t = sσ, λ_t = log(α_t/σ_t) = −log σ. Steps go from t_cur (s, σ) to t_next (s', σ'),
h = λ' − λ = log(σ/σ') > 0.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from sdebench.solvers.coefficients import expm1, sqrt
from sdebench.solvers.solver import Solver
from sdebench.state import axpy


def exponential_update(x, denoised, s, std, s_next, std_next):
    """The first-order exponential step shared by every solver here (DPM-Solver++1, Lu et al.
    2022b, eq. 8; = DDIM, Song et al. 2021, eq. 12; = DPM-Solver-1 with ε̂ = (x − s x̂₀)/(sσ)),
    written in s and the kernel's std sσ (their α_t and σ_t):

        x' = (s'σ'/(sσ)) x + (s' − s · s'σ'/(sσ)) D,

    the exact PF-ODE solution from (s, σ) to (s', σ') when the denoiser is held at D (s'(1 − σ'/σ)
    = s' − s s'σ'/(sσ)). Finite at a pure-noise start (s = 0, σ = ∞, sσ finite), where it is
    x' = (s'σ'/(sσ)) x + s' D, and at σ' = 0. Two tensor passes (axpy)."""
    std_ratio = std_next / std
    return axpy(std_ratio * x, s_next - s * std_ratio, denoised)


def sigma_ratio(s, std, s_next, std_next):
    """σ'/σ = e^{−h} from s and sσ: 0 at a pure-noise start (s = 0)."""
    return (std_next / std) * (s / s_next)


def ancestral_update(ctx, x, denoised, t_cur, t_next, sigma_up):
    """Exponential step to σ_down = √(σ'² − σ_up²), then fresh noise s'σ_up z: the exact posterior
    q(x_{t'} | x_t, x̂₀ = D) when σ_up = σ'√(1 − σ'²/σ²) (Ho et al. 2020, eq. 6–7). ``sigma_up``
    is given relative to σ' (σ_up/σ'), so that it stays finite at a pure-noise start."""
    s_next, std_next = _coefficients(ctx, t_next)
    std_down = std_next * sqrt(1 - sigma_up**2)
    x_next = exponential_update(x, denoised, *_coefficients(ctx, t_cur), s_next, std_down)
    return axpy(x_next, std_next * sigma_up, ctx.normal(t_cur, t_next, x))


def _coefficients(ctx, t):
    """(s, sσ) at t."""
    at = ctx.at(t)
    return at.s, at.kernel_std


def _h(ctx, t_cur, t_next):
    return ctx.at(t_next).half_log_snr - ctx.at(t_cur).half_log_snr


def _t_of_half_log_snr(ctx, lam, like):
    """t(λ) for an intermediate λ (a Python float where the grid's table is on the host),
    inverted in float64 and returned in the dtype and on the device of the grid time ``like``."""
    lam = torch.as_tensor(lam, dtype=torch.float64, device=like.device)
    return ctx.schedule.t_of_half_log_snr(lam).to(like.dtype)


class DDIM(Solver):
    """DDIM (Song, Meng & Ermon 2021, eq. 12) in y = x/s:
    y' = x̂₀ + σ_down ε̂ + σ_up z,  σ_up = η σ' √(1 − σ'²/σ²),  σ_down = √(σ'² − σ_up²).

    η = 0 is the exponential update (theory/claims/ddim.py: Euler in (σ, x/s) = DPM-Solver-1);
    η = 1 samples the exact posterior q(x_{t'} | x_t, x̂₀), i.e. DDPM ancestral sampling with
    variance β̃ (Ho et al. 2020, eq. 6–7; Song et al. 2021, eq. 47 for VE).
    """

    order = 1
    strong_order = None
    nfe_per_step = 1
    handles_zero_sigma = True
    handles_infinite_sigma = True  # the step reads s, sσ and σ'/σ only, all finite there

    def __init__(self, eta: float = 0.0):
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {eta!r}")
        self.eta = float(eta)

    @property
    def stochastic(self) -> bool:
        return self.eta > 0

    def step(self, ctx, x, t_cur, t_next, state):
        (s, std), (s_next, std_next) = _coefficients(ctx, t_cur), _coefficients(ctx, t_next)
        denoised = ctx.denoise(x, t_cur)
        if not self.stochastic:
            return exponential_update(x, denoised, s, std, s_next, std_next), state
        sigma_up = self.eta * sqrt(1 - sigma_ratio(s, std, s_next, std_next) ** 2)
        return ancestral_update(ctx, x, denoised, t_cur, t_next, sigma_up), state


class DPMSolver2(Solver):
    """DPM-Solver-2, singlestep (Lu et al. 2022, Alg. 4 with r₁ = ½), noise prediction:
    u = exponential update to t_m (λ_m = λ + r₁h), then
    x' = exponential update to t' − (s'σ'/(2r₁)) (eʰ − 1)(ε̂(u, t_m) − ε̂(x, t))."""

    order, strong_order, nfe_per_step, stochastic = 2, None, 2, False
    r1 = 0.5

    def step(self, ctx, x, t_cur, t_next, state):
        h = _h(ctx, t_cur, t_next)
        t_mid = _t_of_half_log_snr(ctx, ctx.at(t_cur).half_log_snr + self.r1 * h, t_cur)
        (s, std), (s_mid, std_mid) = _coefficients(ctx, t_cur), _coefficients(ctx, t_mid)
        s_next, std_next = _coefficients(ctx, t_next)
        denoised = ctx.denoise(x, t_cur)
        u = exponential_update(x, denoised, s, std, s_mid, std_mid)
        eps_difference = ctx.eps(u, ctx.denoise(u, t_mid), t_mid) - ctx.eps(x, denoised, t_cur)
        x_next = exponential_update(x, denoised, s, std, s_next, std_next)
        return axpy(x_next, -std_next * expm1(h) / (2 * self.r1), eps_difference), state


class DPMSolver3(Solver):
    """DPM-Solver-3, singlestep (Lu et al. 2022, Alg. 5 with r₁ = ⅓, r₂ = ⅔), noise prediction:
    u₁ = update to λ + r₁h; u₂ = update to λ + r₂h − s₂σ₂ (r₂/r₁) φ(r₂h) D₁;
    x' = update to λ + h − (s'σ'/r₂) φ(h) D₂, with φ(z) = (eᶻ − 1)/z − 1 and
    Dₖ = ε̂(uₖ) − ε̂(x)."""

    order, strong_order, nfe_per_step, stochastic = 3, None, 3, False
    r1, r2 = 1 / 3, 2 / 3

    def step(self, ctx, x, t_cur, t_next, state):
        h = _h(ctx, t_cur, t_next)
        lam = ctx.at(t_cur).half_log_snr
        t1 = _t_of_half_log_snr(ctx, lam + self.r1 * h, t_cur)
        t2 = _t_of_half_log_snr(ctx, lam + self.r2 * h, t_cur)
        (s, std), (s1, std1) = _coefficients(ctx, t_cur), _coefficients(ctx, t1)
        (s2, std2), (s_next, std_next) = _coefficients(ctx, t2), _coefficients(ctx, t_next)
        denoised = ctx.denoise(x, t_cur)
        eps = ctx.eps(x, denoised, t_cur)
        u1 = exponential_update(x, denoised, s, std, s1, std1)
        d1 = ctx.eps(u1, ctx.denoise(u1, t1), t1) - eps
        phi_2 = expm1(self.r2 * h) / (self.r2 * h) - 1
        u2 = axpy(exponential_update(x, denoised, s, std, s2, std2),
                  -std2 * (self.r2 / self.r1) * phi_2, d1)
        d2 = ctx.eps(u2, ctx.denoise(u2, t2), t2) - eps
        phi = expm1(h) / h - 1
        x_next = axpy(exponential_update(x, denoised, s, std, s_next, std_next),
                      -std_next / self.r2 * phi, d2)
        return x_next, state


class History(NamedTuple):
    """What a two-step multistep method keeps: the previous x̂₀ and its step's h."""

    denoised: torch.Tensor
    h: torch.Tensor | float


def second_order_denoised(denoised, history: History | None, h):
    """DPM-Solver++(2M)'s D = (1 + 1/(2r)) x̂₀ − 1/(2r) x̂₀_prev, r = h_prev/h (Lu et al. 2022b,
    Alg. 2); D = x̂₀ on the first step (DPM-Solver++1)."""
    if history is None:
        return denoised
    r = history.h / h
    return axpy((1 + 1 / (2 * r)) * denoised, -1 / (2 * r), history.denoised)


class DPMSolverPP2M(Solver):
    """DPM-Solver++(2M) (Lu et al. 2022b, Alg. 2), data prediction, multistep: the exponential
    update with D of :func:`second_order_denoised`."""

    order, strong_order, nfe_per_step, stochastic = 2, None, 1, False
    handles_infinite_sigma = True  # h = ∞ on the first step: the second has r = ∞, D = x̂₀

    def step(self, ctx, x, t_cur, t_next, state: History | None):
        (s, std), (s_next, std_next) = _coefficients(ctx, t_cur), _coefficients(ctx, t_next)
        h = _h(ctx, t_cur, t_next)
        denoised = ctx.denoise(x, t_cur)
        d = second_order_denoised(denoised, state, h)
        return exponential_update(x, d, s, std, s_next, std_next), History(denoised, h)


class DPMSolverPP2MSDE(Solver):
    """SDE-DPM-Solver++(2M) (Lu et al. 2022b, §5; k-diffusion's 'midpoint' variant):
    x' = (s'σ'/(sσ)) e^{−h} x + s'(1 − e^{−2h}) D + s'σ' √(1 − e^{−2h}) z with D of
    :func:`second_order_denoised` — the ancestral step with σ_up = σ'√(1 − e^{−2h}), since
    σ'/σ = e^{−h} (then σ_down = σ'e^{−h})."""

    order = 2  # weak order, as claimed by Lu et al. 2022b (Thm. 5.1 for the ODE counterpart)
    strong_order, nfe_per_step, stochastic = None, 1, True
    handles_infinite_sigma = True  # first step: x' = s'D + s'σ' z, the exact posterior

    def step(self, ctx, x, t_cur, t_next, state: History | None):
        h = _h(ctx, t_cur, t_next)
        denoised = ctx.denoise(x, t_cur)
        d = second_order_denoised(denoised, state, h)
        sigma_up = sqrt(-expm1(-2 * h))  # relative to σ'; 1 at a pure-noise start
        return ancestral_update(ctx, x, d, t_cur, t_next, sigma_up), History(denoised, h)


class UniPCHistory(NamedTuple):
    """UniPC's state after a step from λ: x̂₀ there, and what UniC needs to correct the predicted
    x̃' once x̂₀(x̃', t') is known: x̃' = base − αB (ρ₁D₁ + ρ_c (x̂₀' − x̂₀)), with ρ₁D₁ kept as
    (ρ₁/r₁) ΔD, ΔD = x̂₀_prev − x̂₀ (None after the first step, which has no D₁)."""

    lam: torch.Tensor | float
    denoised: torch.Tensor
    base: torch.Tensor
    alpha_b: torch.Tensor | float
    difference: torch.Tensor | None
    rho_1_over_r1: torch.Tensor | float
    rho_c: torch.Tensor | float


class UniPCBh2(Solver):
    """UniPC with B(h) = eʰ − 1 ("bh2"), data prediction, predictor order 2 (Zhao et al. 2023,
    Alg. 2–3; UniP-2 + UniC). In λ = −log σ with h = λ' − λ (their h), hh = −h:

        x̃' = exponential update(x, x̂₀) − s' B(h) ρ_p D₁,     D₁ = (x̂₀_prev − x̂₀)/r₁,

    r₁ = (λ_prev − λ)/h. UniC corrects x̃' once x̂₀(x̃', t') is known — that evaluation is the
    next step's own, so the corrector costs no extra NFE; the final step stays uncorrected.
    ρ_p = ½ and ρ_c solve R ρ = b with R_ik = r_kⁱ⁻¹, b_i = i! hh φ_{i+1}(hh)/B(h).
    UniC raises the order by one (Zhao et al. 2023, Thm. 3.3): order 3 with one history point.
    The division by r₁ is folded into the scalar coefficients, so D₁ is never a tensor of its
    own: predictor and corrector are axpys on ΔD = x̂₀_prev − x̂₀ and x̂₀' − x̂₀.
    """

    order, strong_order, nfe_per_step, stochastic = 3, None, 1, False
    handles_infinite_sigma = True  # λ = −∞ on the first step: then r₁ = ∞ and D₁ = 0

    def step(self, ctx, x, t_cur, t_next, state: UniPCHistory | None):
        denoised = ctx.denoise(x, t_cur)
        if state is not None:  # UniC: correct x with the model output at the predicted x
            x = _unic(state, denoised)
        (s, std), (s_next, std_next) = _coefficients(ctx, t_cur), _coefficients(ctx, t_next)
        lam, lam_next = ctx.at(t_cur).half_log_snr, ctx.at(t_next).half_log_snr
        h = lam_next - lam
        b_h = expm1(-h)
        base = exponential_update(x, denoised, s, std, s_next, std_next)
        alpha_b = s_next * b_h
        if state is None:
            return base, UniPCHistory(lam, denoised, base, alpha_b, None, 0.0, 0.5)
        b_1, b_2 = _unipc_b(-h, b_h)
        r1 = (state.lam - lam) / h
        difference = state.denoised - denoised  # r₁ D₁
        rho_1 = (b_1 - b_2) / (1 - r1)  # R = [[1, 1], [r1, 1]] ρ = b, solved in closed form
        x_next = axpy(base, -alpha_b * 0.5 / r1, difference)  # UniP-2: ρ_p = ½
        return x_next, UniPCHistory(lam, denoised, base, alpha_b, difference, rho_1 / r1, b_1 - rho_1)


def _unic(state: UniPCHistory, denoised):
    """x̃' = base − αB ρ_c (x̂₀' − x̂₀) − αB (ρ₁/r₁) ΔD (UniC, Zhao et al. 2023, Alg. 3)."""
    x = axpy(state.base, -state.alpha_b * state.rho_c, denoised - state.denoised)
    if state.difference is None:
        return x
    return axpy(x, -state.alpha_b * state.rho_1_over_r1, state.difference)


def _unipc_b(hh, b_h):
    """b_i = i! hh φ_{i+1}(hh)/B(h) for i = 1, 2, with φ₁(z) = (eᶻ − 1)/z and
    φ_{k+1}(z) = (φ_k(z) − 1/k!)/z (Zhao et al. 2023, eq. 8 and App. C)."""
    hh_phi_2 = expm1(hh) / hh - 1
    hh_phi_3 = hh_phi_2 / hh - 0.5
    return hh_phi_2 / b_h, 2 * hh_phi_3 / b_h
