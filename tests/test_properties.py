"""Property tests (hypothesis): random valid schedules, Gaussian data, dimensions and times."""

import math

import numpy as np
import pytest
import sympy
import torch
from hypothesis import assume, example, given
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

from sdebench.problems.gaussian import GaussianProblem
from sdebench.problems.law import ExactLawNoise
from sdebench.solvers.catalogue import BUILTIN_SAMPLERS, get_solver
from sdebench.solvers.exponential import DDIM
from sdebench.solvers.loop import sample
from sdebench.solvers.noise import PerSampleIncrements
from sdebench.theory import edm, subvp, ve_geometric
from sdebench.theory.numeric import lambdify
from tests.helpers import em_error_and_first_order_term
from tests.strategies import gaussian_data, gaussian_problems, schedules

DETERMINISTIC = [name for name in BUILTIN_SAMPLERS if not get_solver(name).stochastic]


def _time(schedule, fraction):
    return float(schedule.t_min) + fraction * float(schedule.t_max - schedule.t_min)


def _grid(schedule, t_from, t_to, steps):
    return torch.linspace(t_from, t_to, steps + 1, dtype=torch.float64)


@given(schedules(), st.floats(0.05, 2.0), st.floats(0.1, 1.0))
def test_kernel_matches_integrated_ito_moment_odes(schedule, data_var, fraction):
    """dm/dt = f m, dv/dt = 2 f v + g² from t_min (rtol 1e-11) reproduce s μ and s²(v₀ + σ²)
    to 1e-8 relative (the integrator's tolerance plus conditioning)."""
    f, g2 = lambdify(schedule.f, "numpy"), lambdify(schedule.g2, "numpy")
    s, sigma = lambdify(schedule.s, "numpy"), lambdify(schedule.sigma, "numpy")
    t0, t1 = float(schedule.t_min), _time(schedule, fraction)
    start = [float(s(t0)), float(s(t0) ** 2 * (data_var + sigma(t0) ** 2))]
    solution = solve_ivp(lambda t, y: [f(t) * y[0], 2 * f(t) * y[1] + g2(t)], (t0, t1), start,
                         rtol=1e-11, atol=1e-14, method="DOP853")
    mean, variance = solution.y[:, -1]
    assert mean == pytest.approx(float(s(t1)), rel=1e-8)
    assert variance == pytest.approx(float(s(t1) ** 2 * (data_var + sigma(t1) ** 2)), rel=1e-8)


@given(schedules(), gaussian_data(), st.floats(0.2, 0.8), st.floats(0.0, 2.0))
@example(ve_geometric(sympy.Rational(49, 1000), 49),
         (torch.zeros(1, dtype=torch.float64), torch.full((1,), 3.0, dtype=torch.float64)),
         0.53125, 0.71875)
@example(subvp(sympy.Rational(31, 500), 5),
         (torch.zeros(1, dtype=torch.float64), torch.full((1,), 0.1875, dtype=torch.float64)),
         0.203125, 0.0)
@example(subvp(sympy.Rational(129, 500), 5),
         (torch.zeros(1, dtype=torch.float64), torch.full((1,), 0.0508, dtype=torch.float64)),
         0.2, 0.0)
def test_sde_family_error_is_its_derived_first_order_term(schedule, data, fraction, noise_scale):
    """The h(t) = η·g(t) family (η = 1: Anderson's reverse SDE; η = 0: the PF-ODE), Euler–Maruyama
    exact law from t_max to an intermediate t. Its mean and variance errors are P_N + R_N, P_N the
    derived first-order term (theory/em_error.py) and R_N = O(h²): doubling N from 800, R_N's
    local slope reaches 2 − 0.25 by 6400 steps (or R_N sits at the float64 floor). So the error
    vanishes and is exactly the derived term to first order: that is the property. A wrong
    derived term leaves an O(h) part in R_N, whose local slope tends to 1 and never reaches it.

    O(h²) is asymptotic, so the step counts must be in that regime. At 200 → 400 steps (an earlier
    version) the nightly profile found subvp(β_min = 0.062, β_max = 5), data variance 0.1875,
    η = 0 (the second @example): R_N's local slope is 1.30, then 1.75, 1.89, 1.95 at 400 → 800 →
    1600 → 3200 (its h³ term still comparable at 200 steps), while R_N is 1.6e-4 of the error at
    200 steps: the derived term is right, the sizes were pre-asymptotic.

    The error's own slope is not one: where P_N is small (VE, f ≡ 0, a boundary term; README) it
    measures between 1 and 2 (nightly profile: 1.47), and where P_N and R_N have opposite signs
    below 1 — the @example, VE(σ_min = 0.049, σ_max = 49), data variance 3, η = 0.71875, measures
    0.737 between 200 and 400 steps (an earlier version asserted ≥ 0.75) while its remainder
    falls at order 1.99. The nightly profile then found subvp(β_min = 0.258, β_max = 5), data
    variance 0.0508, η = 0 (the third @example) still pre-asymptotic at 800 → 1600: R_N's local
    slopes 0.34, 1.27, 1.74, 1.89 from 400 to 6400 steps (stiffer: a small data variance), R_N
    1.4e-5 of the error at 1600 — hence the doubling up to 6400 steps, not fixed sizes."""
    problem = GaussianProblem(schedule, *data)
    t_mid = _time(schedule, fraction)
    floor = 1e-10 * float(problem.marginal_std_eigen(torch.tensor(t_mid, dtype=torch.float64)).max() ** 2)
    remainders = {}
    for steps in (800, 1600, 3200, 6400):
        ts = _grid(schedule, float(schedule.t_max), t_mid, steps)
        error, lead = em_error_and_first_order_term(problem, ts, noise_scale)
        remainders[steps] = np.linalg.norm(error - lead)
        if remainders[steps] < floor:
            return
        if steps > 800 and math.log2(remainders[steps // 2] / remainders[steps]) >= 2 - 0.25:
            return
    pytest.fail(f"R_N's local slope stays below 1.75 up to 6400 steps: {remainders}")


@given(st.data(), st.floats(0.0, 0.9))
def test_exact_flow_map_pushes_p_T_to_p_t(data, fraction):
    schedule = data.draw(schedules())
    problem = data.draw(gaussian_problems(schedule))
    t_max = torch.tensor(float(schedule.t_max), dtype=torch.float64)
    t = torch.tensor(_time(schedule, fraction), dtype=torch.float64)
    pushed = problem.flow_map(problem.marginal_law(t_max), t_max, t)
    assert float(problem.w2(pushed, t)) <= 1e-10 * (1 + float(problem.marginal_std_eigen(t).max()))


def _log_snr_grid(schedule, t_from: float, t_to: float, steps: int):
    """Uniform in λ = −log σ from t_from down to t_to (the studies' grid), float64."""
    numeric = schedule.numeric
    ends = torch.tensor([t_from, t_to], dtype=torch.float64)
    lam = torch.linspace(*numeric.half_log_snr(ends).tolist(), steps + 1, dtype=torch.float64)
    grid = numeric.t_of_half_log_snr(lam)
    grid[0], grid[-1] = ends
    return grid


def _asymptotic_steps(schedule, eigenvalues, t_from: float, t_to: float, start: int = 200) -> int:
    """The smallest N = start · 2^k (N ≤ 3 200) whose log-SNR grid changes σ by at most a tenth of
    the local radius of analyticity per step. Per eigen-direction the exact flow is
    ∝ √(λ + σ²), analytic in σ up to σ = ±i√λ: at σ the radius is √(σ² + λ), and a longer step
    is pre-asymptotic however many steps there are. Within it the next term of the error
    expansion moves the fitted slope by < 0.1."""
    radius_floor = float(eigenvalues.min())
    steps = start
    while steps < 3200:
        sigmas = schedule.numeric.sigma(_log_snr_grid(schedule, t_from, t_to, steps))
        radius = torch.sqrt(sigmas[:-1] ** 2 + radius_floor)
        if bool(((sigmas[:-1] - sigmas[1:]).abs() <= radius / 10).all()):
            break
        steps *= 2
    return steps


@given(schedules(), gaussian_data(), st.floats(0.0, 0.9))
@example(edm(sympy.Rational(1, 125), 79),
         (torch.zeros(1, dtype=torch.float64), torch.full((1,), 0.05, dtype=torch.float64)), 0.0)
def test_rk4_flow_pushes_p_T_to_p_t_at_fourth_order(schedule, data, fraction):
    """RK4 exact law at N and 2N log-SNR steps in the asymptotic regime
    (:func:`_asymptotic_steps`): order ≥ 3.5, or already at the float64 floor (W₂ < 1e-9
    relative to the marginal scale). Uniform t grids with fixed N were pre-asymptotic: 100/200
    steps for EDM with σ_max/σ_min = 10⁴ (slope 3.497), then 200/400 steps for EDM(1/125, 79)
    with data variance 0.05 (slope 3.46; Δσ = 0.4 against a radius of 0.22 near σ_min), both
    found by the nightly profile; the second is the @example."""
    problem = GaussianProblem(schedule, *data)
    t_from, t_to = float(schedule.t_max), _time(schedule, fraction)
    steps = _asymptotic_steps(schedule, problem.eigenvalues, t_from, t_to)
    errors = []
    for n in (steps, 2 * steps):
        ts = _log_snr_grid(schedule, t_from, t_to, n)
        law = sample(get_solver("rk4"), problem.denoiser, schedule, problem.marginal_law(ts[0]),
                     ts, noise=ExactLawNoise()).x
        errors.append(float(problem.w2(law, ts[-1])))
    coarse, fine = errors
    scale = float(problem.marginal_std_eigen(torch.tensor(t_to, dtype=torch.float64)).max())
    assert fine < 1e-9 * scale or math.log2(coarse / fine) >= 3.5, (steps, coarse, fine)


@given(schedules(), st.lists(st.floats(0.0, 1.0), min_size=1, max_size=8))
def test_sigma_inverse_round_trips(schedule, fractions):
    ts = torch.tensor([_time(schedule, u) for u in fractions], dtype=torch.float64)
    numeric = schedule.numeric
    torch.testing.assert_close(numeric.sigma_inv(numeric.sigma(ts)), ts, rtol=1e-9, atol=1e-9)


@given(schedules(), st.floats(0.0, 1.0), st.sampled_from(["eps", "v", "score"]))
def test_prediction_conversions_round_trip(schedule, fraction, kind):
    numeric = schedule.numeric
    t = torch.tensor(_time(schedule, fraction), dtype=torch.float64)
    x, x0 = torch.randn(2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    there = numeric.conversion("x0", kind)(x, x0, t)
    back = numeric.conversion(kind, "x0")(x, there, t)
    torch.testing.assert_close(back, x0, rtol=1e-8, atol=1e-8 * (1 + float(x.abs().max())))


@given(st.data(), st.sampled_from(DETERMINISTIC), st.integers(1, 6))
def test_deterministic_solvers_are_invariant_to_batch_composition(data, name, split):
    schedule = data.draw(schedules())
    problem = data.draw(gaussian_problems(schedule))
    ts = _grid(schedule, float(schedule.t_max), float(schedule.t_min), 6)
    x = problem.sample_marginal(ts[0], 7, torch.Generator().manual_seed(1))
    whole = sample(get_solver(name), problem.denoiser, schedule, x, ts).x
    part = sample(get_solver(name), problem.denoiser, schedule, x[:split], ts).x
    if name == "rk45":  # step sizes depend on the batch's rms error norm (documented)
        assert torch.isfinite(part).all()
    else:
        torch.testing.assert_close(part, whole[:split], rtol=1e-12, atol=1e-12)


BATCH_COUPLED = {"pc": "Song et al.'s corrector step uses batch-mean norms",
                 "rk45": "step sizes follow the batch's rms error norm"}
STOCHASTIC = [name for name in BUILTIN_SAMPLERS if get_solver(name).stochastic and name not in BATCH_COUPLED]


@given(st.data(), st.sampled_from(STOCHASTIC), st.integers(1, 6))
def test_stochastic_solvers_with_per_sample_noise_are_invariant_to_batch_composition(
        data, name, split):
    """With per-row noise streams a sample's output does not depend on its batch-mates (all
    stochastic solvers except those in BATCH_COUPLED, coupled by design)."""
    schedule = data.draw(schedules())
    problem = data.draw(gaussian_problems(schedule))
    ts = _grid(schedule, float(schedule.t_max), float(schedule.t_min), 5)
    x = problem.sample_marginal(ts[0], 7, torch.Generator().manual_seed(1))
    seeds = list(range(100, 107))
    whole = sample(get_solver(name), problem.denoiser, schedule, x, ts, noise=PerSampleIncrements(seeds)).x
    part = sample(get_solver(name), problem.denoiser, schedule, x[split:],
                  ts, noise=PerSampleIncrements(seeds[split:])).x
    torch.testing.assert_close(part, whole[split:], rtol=1e-12, atol=1e-12)


@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=2, max_size=6))
def test_bad_grids_raise_value_error_never_nan(values):
    from sdebench.theory import get_schedule

    schedule = get_schedule("vp")
    ts = torch.tensor(values, dtype=torch.float64)
    x = torch.zeros(2, 3, dtype=torch.float64)
    increments = np.diff(values)
    valid = (increments < 0).all() and min(values) >= float(schedule.t_min) and max(values) <= 1
    assume(not valid)
    with pytest.raises(ValueError):
        sample(DDIM(), lambda x, t: x, schedule, x, ts)
