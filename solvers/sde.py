"""Stochastic samplers of the reverse SDE dx = [f x − g² ∇log p_t] dt + g dw̄ (Anderson 1982;
Song et al. 2021, eq. 6), and Langevin-type correctors.
"""

from __future__ import annotations

import math

import torch

from sdebench.registry import check_number
from sdebench.solvers.coefficients import sqrt
from sdebench.solvers.solver import Solver
from sdebench.state import axpy, mean_square_norm


class EulerMaruyama(Solver):
    """Euler–Maruyama on the reverse-time SDE family (note 004; Zhang & Chen 2023, eq. 5)

        dx = [f x − ½(g² + h²) ∇log p_t] dt + h dw̄,   h = noise_scale · g,

    x' = x + drift Δt + h ΔW̄, Δt = t_next − t_cur < 0 (Kloeden & Platen 1992, §9.1).
    noise_scale = 1 is Anderson's reverse SDE, 0 the probability-flow ODE (Euler). With additive
    noise (h independent of x) EM coincides with Milstein: strong order 1."""

    order, nfe_per_step = 1, 1
    handles_zero_sigma = True  # evaluates the model and g at t_cur only

    def __init__(self, noise_scale: float = 1.0):
        self.noise_scale = float(check_number("noise_scale", noise_scale, low=0))

    @property
    def stochastic(self) -> bool:
        return self.noise_scale > 0

    @property
    def strong_order(self) -> float | None:
        return 1 if self.stochastic else None

    def step(self, ctx, x, t_cur, t_next, state):
        """With ∇log p = c_x x + c_D x̂₀ and w = ½(1 + η²) g², the drift is collected as
        x' = (1 + Δt (f − w c_x)) x − Δt w c_D x̂₀ + η g ΔW̄ (two passes plus the noise)."""
        now = ctx.at(t_cur)
        dt = ctx.at(t_next).t - now.t
        c_x, c_denoised = now.score_coefficients
        weight = 0.5 * (1 + self.noise_scale**2) * now.g2
        x_mean = axpy((1 + dt * (now.f - weight * c_x)) * x, -dt * weight * c_denoised,
                      ctx.denoise(x, t_cur))
        if not self.stochastic:
            return x_mean, state
        return axpy(x_mean, self.noise_scale * now.g, ctx.increment(t_cur, t_next, x)), state


def reverse_diffusion_update(ctx, x, t_cur, t_next, z):
    """Song et al. 2021, eq. 46, with the forward step discretised by the exact kernel transition
    x_t = (s/s') x_{t'} + G ξ, G² = s²(σ² − σ'²) (VP: 1 − β_i; VE: σ_i² − σ_{i−1}²):
    x_mean = x − (s/s' − 1) x + G² ∇log p_t(x),  x' = x_mean + G z,
    collected as (2 − s/s' + G² c_x) x + G² c_D x̂₀ (∇log p = c_x x + c_D x̂₀)."""
    now, after = ctx.at(t_cur), ctx.at(t_next)
    s, s_next = now.s, after.s
    g_squared = s**2 * (now.sigma**2 - after.sigma**2)
    c_x, c_denoised = now.score_coefficients
    x_mean = axpy((2 - s / s_next + g_squared * c_x) * x, g_squared * c_denoised,
                  ctx.denoise(x, t_cur))
    return axpy(x_mean, sqrt(g_squared), z)


class ReverseDiffusion(Solver):
    """Reverse-diffusion predictor (Song et al. 2021, App. E, eq. 46); weak order 1."""

    order, strong_order, nfe_per_step, stochastic = 1, None, 1, True
    handles_zero_sigma = True  # evaluates the model at t_cur only

    def step(self, ctx, x, t_cur, t_next, state):
        return reverse_diffusion_update(ctx, x, t_cur, t_next, ctx.normal(t_cur, t_next, x)), state


def langevin_step(x, score, step_size, z):
    """x + ε ∇log p_t(x) + √(2ε) z (Song et al. 2021, Alg. 4–5), as two axpys (six state reads
    and writes, not ten)."""
    return axpy(axpy(x, step_size, score), sqrt(2 * step_size), z)


class PredictorCorrector(Solver):
    """Song et al. 2021, Alg. 2–3: ``n_corrector`` Langevin steps at t_cur, then the
    reverse-diffusion predictor. Corrector step ε = 2α (r ‖z‖/‖∇log p‖)² with α = (s/s')² (1 − β_i
    for VP, 1 for VE) and signal-to-noise ratio r; the norms are taken as batch mean squares
    (Song et al. use the batch mean of norms; equal up to O(1/d)), which makes ε deterministic for
    the exact-law computation."""

    order, strong_order, stochastic = None, None, True
    order_note = (
        "no convergence order: the corrector's step is fixed by snr, not by the grid, so its "
        "Langevin bias does not vanish as steps grow"
    )
    handles_zero_sigma = True  # corrector and predictor evaluate the model at t_cur only

    def __init__(self, snr: float = 0.16, n_corrector: int = 1):
        self.snr = check_number("snr", snr, low=0, low_open=True)
        self.n_corrector = check_number("n_corrector", n_corrector, low=1, integer=True)

    @property
    def nfe_per_step(self) -> int:
        return 1 + self.n_corrector

    def step(self, ctx, x, t_cur, t_next, state):
        alpha = (ctx.at(t_cur).s / ctx.at(t_next).s) ** 2
        for k in range(self.n_corrector):
            z = ctx.normal(t_cur, t_next, x, channel=1 + k)
            score = ctx.score(x, ctx.denoise(x, t_cur), t_cur)
            step_size = 2 * alpha * self.snr**2 * mean_square_norm(z) / mean_square_norm(score)
            x = langevin_step(x, score, step_size, z)
        return reverse_diffusion_update(ctx, x, t_cur, t_next, ctx.normal(t_cur, t_next, x)), state


class AnnealedLangevin(Solver):
    """Annealed Langevin dynamics (Song & Ermon 2019, Alg. 1): at each level t_next,
    ``n_steps`` Langevin steps of size ε_i = r (s_iσ_i)². Song & Ermon's rule ε_i = ε σ_i²/σ_L²
    is r = ε/σ_L² (2·10⁻⁵/0.01² = 0.2); written relative to the level it is stable for every
    schedule (p_t has variance ≥ (sσ)², and Langevin on a Gaussian is stable for ε < 2 var)."""

    order, strong_order, stochastic = None, None, True
    order_note = "no convergence order: an MCMC scheme whose bias is set by step_ratio and n_steps"

    def __init__(self, step_ratio: float = 0.2, n_steps: int = 10):
        # Langevin on a Gaussian of variance v is stable for ε < 2v, and v ≥ (sσ)² (class doc)
        self.step_ratio = check_number("step_ratio", step_ratio, low=0, high=2, low_open=True,
                                       high_open=True)
        self.n_steps = check_number("n_steps", n_steps, low=1, integer=True)

    @property
    def nfe_per_step(self) -> int:
        return self.n_steps

    def step(self, ctx, x, t_cur, t_next, state):
        level = ctx.at(t_next)
        step_size = self.step_ratio * (level.s * level.sigma) ** 2
        for k in range(self.n_steps):
            score = ctx.score(x, ctx.denoise(x, t_next), t_next)
            x = langevin_step(x, score, step_size, ctx.normal(t_cur, t_next, x, channel=k))
        return x, state


class EDMStochastic(Solver):
    """EDM's stochastic sampler (Karras et al. 2022, Alg. 2) in y = x/s with σ as time, so it
    applies to any schedule: γ = min(S_churn/N, √2 − 1) for σ ∈ [S_min, S_max], σ̂ = σ(1 + γ),
    ŷ = y + √(σ̂² − σ²) S_noise z, then a Heun step of dy/dσ = (y − D)/σ from σ̂ to σ'
    (Euler when σ' = 0). ``s_max=None`` means σ(t_max)/(1 + γ) so σ̂ stays in the schedule.
    Weak order 2 with an exact denoiser: adding N(0, σ̂² − σ²) to y is the exact forward kernel
    from σ to σ̂, so the churn leaves the marginal unchanged and only the Heun step errs."""

    order, strong_order, nfe_per_step, stochastic = 2, None, 2, True
    handles_zero_sigma = True  # Euler where σ' = 0 (Alg. 2, line 9)

    def __init__(self, s_churn: float = 10.0, s_min: float = 0.0, s_max: float | None = None,
                 s_noise: float = 1.0):
        self.s_churn = check_number("s_churn", s_churn, low=0)
        self.s_min = check_number("s_min", s_min, low=0)
        self.s_max = None if s_max is None else check_number("s_max", s_max, low=self.s_min)
        self.s_noise = check_number("s_noise", s_noise, low=0)

    def step(self, ctx, x, t_cur, t_next, state):
        sched, now, after = ctx.schedule, ctx.at(t_cur), ctx.at(t_next)
        sigma, sigma_next = now.sigma, after.sigma
        gamma = min(self.s_churn / ctx.steps, math.sqrt(2) - 1)
        s_max = sched.sigma_max / (1 + gamma) if self.s_max is None else self.s_max
        if not self.s_min <= float(sigma) <= s_max:
            gamma = 0.0
        y = x / now.s
        # Increase noise temporarily.
        sigma_hat = sigma * (1 + gamma)
        t_hat = sched.sigma_inv(torch.as_tensor(sigma_hat, dtype=torch.float64, device=t_cur.device)
                                ).to(t_cur.dtype) if gamma > 0 else t_cur
        if gamma > 0:
            y = axpy(y, sqrt(sigma_hat**2 - sigma**2) * self.s_noise, ctx.normal(t_cur, t_next, x))
        # Euler step from sigma_hat to sigma_next.
        d_cur = (y - ctx.denoise(ctx.at(t_hat).s * y, t_hat)) / sigma_hat
        y_next = axpy(y, sigma_next - sigma_hat, d_cur)
        # Second-order correction: y + (σ' − σ̂)(½ d_cur + ½ d_next), the ½ taken out of the sum.
        if not ctx.to_zero_sigma:
            d_next = (y_next - ctx.denoise(after.s * y_next, t_next)) / sigma_next
            y_next = axpy(y, 0.5 * (sigma_next - sigma_hat), d_cur + d_next)
        return after.s * y_next, state
