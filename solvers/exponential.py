"""Exponential-integrator solvers in λ = −log σ: DDIM, DPM-Solver-1/2/3, DPM-Solver++(2M) and its
SDE variant.

Notation of Lu et al. 2022 translated to the kernel x_t = s x₀ + sσ ε: their α_t = s,
σ_t = sσ, λ_t = log(α_t/σ_t) = −log σ. Steps go from t_cur (s, σ) to t_next (s', σ'),
h = λ' − λ = log(σ/σ') > 0.
"""

from __future__ import annotations

import torch
from sdebench.solvers.base import Solver, axpy


def _h(ctx, t_cur, t_next):
    return ctx.schedule.half_log_snr(t_next) - ctx.schedule.half_log_snr(t_cur)


class DDIM(Solver):
    """DDIM (Song, Meng & Ermon 2021, eq. 12) written in y = x/s:
    y' = x̂₀ + σ_down ε̂ + σ_up z,  σ_up = η σ' √(1 − σ'²/σ²),  σ_down = √(σ'² − σ_up²).

    η = 0 is Euler in (σ, x/s) = DPM-Solver-1 (theory/claims/ddim.py); η = 1 samples the exact
    posterior q(x_{t'} | x_t, x̂₀), i.e. DDPM ancestral sampling with variance β̃ (Ho et al. 2020,
    eq. 6–7; Song et al. 2021, eq. 47 for VE).
    """

    nfe_per_step = 1

    def __init__(self, eta: float = 0.0, name: str | None = None):
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {eta!r}")
        self.eta = float(eta)
        self.name = name or ("ddim" if eta == 0 else f"ddim_eta{eta:g}")
        self.stochastic = eta > 0
        self.order = 1
        self.strong_order = None

    def step(self, ctx, x, t_cur, t_next, state):
        """x' = s'(x̂₀ + σ_down ε̂ + σ_up z) with ε̂ = (x − s x̂₀)/(sσ), collected as
        (s'σ_down/(sσ)) x + s'(1 − σ_down/σ) x̂₀ + s'σ_up z: two tensor passes plus the noise."""
        sched = ctx.schedule
        s, s_next = sched.s(t_cur), sched.s(t_next)
        sigma, sigma_next = sched.sigma(t_cur), sched.sigma(t_next)
        denoised = ctx.denoise(x, t_cur)
        sigma_up = self.eta * sigma_next * torch.sqrt(1 - (sigma_next / sigma) ** 2)
        down_ratio = torch.sqrt(sigma_next**2 - sigma_up**2) / sigma
        x_next = axpy((s_next / s * down_ratio) * x, s_next * (1 - down_ratio), denoised)
        if self.stochastic:
            x_next = axpy(x_next, s_next * sigma_up, ctx.normal(t_cur, t_next, x))
        return x_next, state


class DPMSolver2(Solver):
    """DPM-Solver-2, singlestep (Lu et al. 2022, Alg. 4 with r₁ = ½), noise prediction:
    u = (s_m/s) x − s_mσ_m(e^{r₁h} − 1) ε̂, then
    x' = (s'/s) x − s'σ'(eʰ − 1) ε̂ − s'σ'/(2r₁) (eʰ − 1)(ε̂(u, t_m) − ε̂)."""

    name, order, nfe_per_step, stochastic = "dpm_solver_2", 2, 2, False
    r1 = 0.5

    def step(self, ctx, x, t_cur, t_next, state):
        sched = ctx.schedule
        h = _h(ctx, t_cur, t_next)
        t_mid = sched.t_of_half_log_snr(sched.half_log_snr(t_cur) + self.r1 * h)
        s, s_mid, s_next = sched.s(t_cur), sched.s(t_mid), sched.s(t_next)
        sig_mid, sig_next = sched.sigma(t_mid), sched.sigma(t_next)
        eps = ctx.eps(x, ctx.denoise(x, t_cur), t_cur)
        u = (s_mid / s) * x - s_mid * sig_mid * torch.expm1(self.r1 * h) * eps
        eps_mid = ctx.eps(u, ctx.denoise(u, t_mid), t_mid)
        phi = s_next * sig_next * torch.expm1(h)
        return (s_next / s) * x - phi * eps - (phi / (2 * self.r1)) * (eps_mid - eps), state


class DPMSolver3(Solver):
    """DPM-Solver-3, singlestep (Lu et al. 2022, Alg. 5 with r₁ = ⅓, r₂ = ⅔), noise prediction."""

    name, order, nfe_per_step, stochastic = "dpm_solver_3", 3, 3, False
    r1, r2 = 1 / 3, 2 / 3

    def step(self, ctx, x, t_cur, t_next, state):
        sched = ctx.schedule
        h = _h(ctx, t_cur, t_next)
        lam = sched.half_log_snr(t_cur)
        t1 = sched.t_of_half_log_snr(lam + self.r1 * h)
        t2 = sched.t_of_half_log_snr(lam + self.r2 * h)
        s, s1, s2, s_next = sched.s(t_cur), sched.s(t1), sched.s(t2), sched.s(t_next)
        sig1, sig2, sig_next = sched.sigma(t1), sched.sigma(t2), sched.sigma(t_next)
        eps = ctx.eps(x, ctx.denoise(x, t_cur), t_cur)
        u1 = (s1 / s) * x - s1 * sig1 * torch.expm1(self.r1 * h) * eps
        d1 = ctx.eps(u1, ctx.denoise(u1, t1), t1) - eps
        phi2 = torch.expm1(self.r2 * h) / (self.r2 * h) - 1
        u2 = ((s2 / s) * x - s2 * sig2 * torch.expm1(self.r2 * h) * eps
              - (s2 * sig2 * self.r2 / self.r1) * phi2 * d1)
        d2 = ctx.eps(u2, ctx.denoise(u2, t2), t2) - eps
        phi = torch.expm1(h) / h - 1
        x_next = ((s_next / s) * x - s_next * sig_next * torch.expm1(h) * eps
                  - (s_next * sig_next / self.r2) * phi * d2)
        return x_next, state


class DPMSolverPP2M(Solver):
    """DPM-Solver++(2M) (Lu et al. 2022b, Alg. 2), data prediction, multistep:
    x' = (s'σ'/(sσ)) x − s'(e^{−h} − 1) D, D = (1 + 1/(2r)) x̂₀ − 1/(2r) x̂₀_prev, r = h_prev/h;
    the first step uses D = x̂₀ (DPM-Solver++1)."""

    name, order, nfe_per_step, stochastic = "dpmpp_2m", 2, 1, False

    def step(self, ctx, x, t_cur, t_next, state):
        sched = ctx.schedule
        h = _h(ctx, t_cur, t_next)
        denoised = ctx.denoise(x, t_cur)
        d = denoised if state is None else _extrapolate(denoised, state, h)
        ratio = sched.s(t_next) * sched.sigma(t_next) / (sched.s(t_cur) * sched.sigma(t_cur))
        x_next = ratio * x - sched.s(t_next) * torch.expm1(-h) * d
        return x_next, (denoised, h)


def _extrapolate(denoised, state, h):
    previous, h_prev = state
    r = h_prev / h
    return (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * previous


class DPMSolverPP2MSDE(Solver):
    """SDE-DPM-Solver++(2M) (Lu et al. 2022b, §5, eq. for the SDE variant; k-diffusion 'midpoint'):
    x' = (s'σ'/(sσ)) e^{−h} x + s'(1 − e^{−2h}) D + s'σ' √(1 − e^{−2h}) z,
    D = x̂₀ + (x̂₀ − x̂₀_prev)/(2r)."""

    name, nfe_per_step, stochastic = "dpmpp_2m_sde", 1, True
    order = 2  # weak order, as claimed by Lu et al. 2022b (Thm. 5.1 for the ODE counterpart)

    def step(self, ctx, x, t_cur, t_next, state):
        sched = ctx.schedule
        h = _h(ctx, t_cur, t_next)
        denoised = ctx.denoise(x, t_cur)
        d = denoised if state is None else _extrapolate(denoised, state, h)
        s_next, sig_next = sched.s(t_next), sched.sigma(t_next)
        ratio = s_next * sig_next / (sched.s(t_cur) * sched.sigma(t_cur))
        decay = -torch.expm1(-2 * h)
        x_next = (ratio * torch.exp(-h)) * x + (s_next * decay) * d
        x_next = x_next + (s_next * sig_next * torch.sqrt(decay)) * ctx.normal(t_cur, t_next, x)
        return x_next, (denoised, h)



class UniPCBh2(Solver):
    """UniPC with B(h) = eʰ − 1 ("bh2"), data prediction, predictor order 2 (Zhao et al. 2023,
    Alg. 2–3; UniP-2 + UniC). In λ = −log σ with h = λ' − λ (their h), hh = −h:

        x̃' = (s'σ'/(sσ)) x − s'(e^{hh} − 1) x̂₀ − s' B(h) ρ_p D₁,     D₁ = (x̂₀_prev − x̂₀)/r₁,

    r₁ = (λ_prev − λ)/h. UniC corrects x̃' once x̂₀(x̃', t') is known — that evaluation is the
    next step's own, so the corrector costs no extra NFE; the final step stays uncorrected.
    ρ_p = ½ and ρ_c solve R ρ = b with R_ik = r_kⁱ⁻¹, b_i = i! φ_{i+1}(hh)/B(h).
    UniC raises the order by one (Zhao et al. 2023, Thm. 3.3): order 3 with one history point.
    """

    name, order, nfe_per_step, stochastic = "unipc_bh2", 3, 1, False

    def step(self, ctx, x, t_cur, t_next, state):
        sched = ctx.schedule
        denoised = ctx.denoise(x, t_cur)
        pending, history = state if state is not None else (None, None)
        if pending is not None:
            base, alpha_b, partial, rho_last, previous = pending
            x = base - alpha_b * (partial + rho_last * (denoised - previous))
        lam, lam_next = sched.half_log_snr(t_cur), sched.half_log_snr(t_next)
        h = lam_next - lam
        hh = -h
        s_next, sig_next = sched.s(t_next), sched.sigma(t_next)
        phi_1 = torch.expm1(hh)
        b_h = phi_1
        ratio = s_next * sig_next / (sched.s(t_cur) * sched.sigma(t_cur))
        base = ratio * x - s_next * phi_1 * denoised
        alpha_b = s_next * b_h
        phi_k, factorial, b = phi_1 / hh - 1, 1, []
        order = 1 if history is None else 2
        for i in range(1, order + 1):
            b.append(phi_k * factorial / b_h)
            factorial *= i + 1
            phi_k = phi_k / hh - 1 / factorial
        if history is None:
            x_next = base
            partial, rho_last = 0.0, 0.5
        else:
            lam_prev, denoised_prev = history
            r1 = (lam_prev - lam) / h
            d1 = (denoised_prev - denoised) / r1
            x_next = base - alpha_b * 0.5 * d1
            # R = [[1, 1], [r1, 1]] ρ = b  →  closed-form 2×2 solve
            rho_1 = (b[0] - b[1]) / (1 - r1)
            rho_last = b[0] - rho_1
            partial = rho_1 * d1
        return x_next, ((base, alpha_b, partial, rho_last, denoised), (lam, denoised))
