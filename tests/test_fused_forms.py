"""Updates collected into fewer tensor passes (issue 28: the traffic a step moves, counted by
sdebench.studies.traffic) against the forms their papers write, in float64.

Tolerances: each fused form reorders a handful of roundings per step, so agreement is to a few
eps relative to the size of the terms that cancel (the score c_x x + c_D x̂₀ is a difference of
terms ~1/σ² near t_min), times the steps for a whole run.
"""

import torch

from sdebench.solvers.catalogue import get_solver
from sdebench.solvers.context import FiniteMonitor, StepContext
from sdebench.solvers.grids import log_snr_grid
from sdebench.solvers.loop import sample
from tests.helpers import vp_problem

EPS64 = torch.finfo(torch.float64).eps


def test_score_and_eps_are_tweedie_and_the_kernel():
    """∇log p_t = (s x̂₀ − x)/(s²σ²) and ε̂ = (x − s x̂₀)/(sσ), written out at every grid time."""
    problem = vp_problem()
    ts = log_snr_grid(problem.schedule, 4)
    x = problem.sample_marginal(ts[0], 64, torch.Generator().manual_seed(0))
    ctx = StepContext(problem.denoiser, problem.schedule, None, 4, FiniteMonitor("step", ts))
    num = problem.schedule.numeric
    for t in ts:
        denoised = problem.denoiser(x, t)
        s, sigma = num.s(t), num.sigma(t)
        scale = (x.abs() + s * denoised.abs())
        assert ((ctx.score(x, denoised, t) - (s * denoised - x) / (s * sigma) ** 2).abs()
                <= 8 * EPS64 * scale / (s * sigma) ** 2).all()
        assert ((ctx.eps(x, denoised, t) - (x - s * denoised) / (s * sigma)).abs()
                <= 8 * EPS64 * scale / (s * sigma)).all()


def test_unipc_equals_its_paper_form():
    """UniP-2 + UniC (Zhao et al. 2023, Alg. 2–3) with D₁ = (x̂₀_prev − x̂₀)/r₁ as a tensor:
    x̃' = base − αB ½ D₁, corrected once x̂₀' is known to base − αB (ρ₁D₁ + ρ_c (x̂₀' − x̂₀)),
    ρ₁ = (b₁ − b₂)/(1 − r₁), ρ_c = b₁ − ρ₁; the first step is the exponential update, corrected
    with ρ_c = ½; the last stays uncorrected."""
    problem = vp_problem()
    num = problem.schedule.numeric
    steps = 8
    ts = log_snr_grid(problem.schedule, steps)
    x = problem.sample_marginal(ts[0], 64, torch.Generator().manual_seed(1))
    fused = sample(get_solver("unipc_bh2"), problem.denoiser, problem.schedule, x, ts).x
    y, previous = x, None
    for t, t_next in zip(ts[:-1], ts[1:], strict=True):
        denoised = problem.denoiser(y, t)
        if previous is not None:
            lam_prev, denoised_prev, base, alpha_b, rho_d1, rho_c = previous
            y = base - alpha_b * (rho_d1 + rho_c * (denoised - denoised_prev))
        s, std, s_next, std_next = num.s(t), num.kernel_std(t), num.s(t_next), num.kernel_std(t_next)
        lam, h = num.half_log_snr(t), num.half_log_snr(t_next) - num.half_log_snr(t)
        base = (std_next / std) * y + (s_next - s * std_next / std) * denoised
        b_h = torch.expm1(-h)
        alpha_b = s_next * b_h
        if previous is None:
            y, previous = base, (lam, denoised, base, alpha_b, 0.0, 0.5)
            continue
        hh_phi_2 = torch.expm1(-h) / -h - 1
        b_1, b_2 = hh_phi_2 / b_h, 2 * (hh_phi_2 / -h - 0.5) / b_h
        r1 = (previous[0] - lam) / h
        d1 = (previous[1] - denoised) / r1
        rho_1 = (b_1 - b_2) / (1 - r1)
        y, previous = base - alpha_b * 0.5 * d1, (lam, denoised, base, alpha_b, rho_1 * d1, b_1 - rho_1)
    scale = float(y.abs().max())
    assert float((fused - y).abs().max()) <= 64 * steps * EPS64 * scale
