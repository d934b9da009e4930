"""The schedule's coefficients tabulated over the grid (solvers/coefficients.py, issue 28).

Two claims: reading coefficients from the table changes no sampler's output beyond round-off
(against the same loop with every coefficient evaluated at its 0-d time, as before the table),
and a step then runs only the state operations its update needs (counted by the traffic
counter, sdebench.studies.traffic).
"""

import pytest
import torch

from sdebench.problems.gaussian import GaussianProblem
from sdebench.solvers.catalogue import BUILTIN_SAMPLERS, get_solver
from sdebench.solvers.coefficients import GridCoefficients
from sdebench.solvers.context import FiniteMonitor, StepContext
from sdebench.solvers.grids import log_snr_grid, make_grid
from sdebench.solvers.loop import check_zero_sigma, sample, schedule_refusal, starts_at_pure_noise
from sdebench.solvers.noise import GaussianIncrements
from sdebench.studies.timing import speed_problem
from sdebench.studies.traffic import count_traffic
from sdebench.theory import get_schedule

SCHEDULES = ["vp", "edm", "rf", "vp0snr", "edm:sigma_min=0"]
STEPS = 6
TOLERANCE = 1e-13
"""Relative to max|x|. A tabulated coefficient is the 0-d evaluation's formula applied
elementwise in float64 (vectorised exp/log may differ from the scalar ones by 1 ulp): a
few units of u = 1.1e-16 per coefficient, carried through ≤ 6 steps of ≤ 10 evaluations with
bounded amplification: measured worst 7e-15 (dpm_solver_3 on edm). Against the code before
the table it was 4.5e-14 (rk4 on edm), where a Runge–Kutta stage with c = 1 sat at
t_cur + (t_next − t_cur), an ulp of t_cur away from the t_next it now uses."""


def _evaluated(solver, problem, schedule, x, ts, noise):
    """The sampling loop with every coefficient evaluated at its 0-d time (no table): the
    arithmetic the steps did before coefficients were tabulated."""
    steps = ts.numel() - 1
    ctx = StepContext(problem.denoiser, schedule, noise, steps, FiniteMonitor("step", ts),
                      final_sigma_is_zero=check_zero_sigma(solver, schedule, ts))
    state = solver.init_state()
    for i in range(steps):
        ctx.step_index = i
        x, state = solver.step(ctx, x, ts[i], ts[i + 1], state)
    return x


@pytest.mark.parametrize("host_scalars", [True, False], ids=["host floats", "device tensors"])
@pytest.mark.parametrize("spec", SCHEDULES)
def test_tabulated_coefficients_give_the_evaluated_result(spec, host_scalars, monkeypatch):
    """Every builtin sampler, on a grid starting at t_max (a pure-noise start on rf and vp0snr,
    σ = 0 at the end of edm:sigma_min=0), float64, 16 samples in d = 4: the sampling loop with
    its table equals the loop evaluating every coefficient to ``TOLERANCE``; with the table's
    columns kept as tensors (what a grid on an accelerator gives) as with host floats."""
    if not host_scalars:
        monkeypatch.setattr(GridCoefficients, "_host", lambda self, values: values)
    schedule = get_schedule(spec)
    problem = GaussianProblem.random(schedule, 4, seed=0)
    ts = make_grid("uniform", schedule, STEPS)
    x = problem.sample_marginal(ts[0], 16, torch.Generator().manual_seed(1))
    ran = []
    for name in BUILTIN_SAMPLERS:
        solver = get_solver(name)
        if (starts_at_pure_noise(schedule, ts) and schedule_refusal(solver, schedule)) or (
                spec.endswith("sigma_min=0") and not solver.handles_zero_sigma):
            continue
        tabulated = sample(solver, problem.denoiser, schedule, x, ts, noise=GaussianIncrements(2))
        evaluated = _evaluated(get_solver(name), problem, schedule, x, ts, GaussianIncrements(2))
        error = float((tabulated.x - evaluated).abs().max() / evaluated.abs().max())
        assert error <= TOLERANCE, f"{name} on {spec}: relative difference {error:.3g}"
        ran.append(name)
    assert len(ran) >= 9, ran  # 17 builtins; a pure-noise start refuses 7, a σ = 0 end 8


def _marginal_kernels(name: str) -> float:
    """Operations per step outside the model, check_finite off: (K(16) − K(8))/8, so that what
    a run does once (the table, the grid checks) cancels."""
    problem = speed_problem(8, "float64", "cpu", "diagonal")
    counts = []
    for steps in (8, 16):
        ts = log_snr_grid(problem.schedule, steps)
        x = problem.sample_marginal(ts[0], 4)

        def run(model, ts=ts, x=x):
            sample(get_solver(name), model, problem.schedule, x, ts, check_finite="off")

        counts.append(count_traffic(run, problem.denoiser, x.numel()).kernels)
    return (counts[1] - counts[0]) / 8


@pytest.mark.parametrize("name, needed", [
    # PF drift a_x x + a_D x̂₀: a scaled copy and an axpy; the update x + Δ k: an axpy
    ("euler", 3),
    # exponential update (s'σ'/(sσ)) x + (s' − s s'σ'/(sσ)) x̂₀: a scaled copy and an axpy
    ("ddim", 2),
    # D = (1 + 1/(2r)) x̂₀ − 1/(2r) x̂₀_prev: a scaled copy and an axpy; then DDIM's two
    ("dpmpp_2m", 4),
])
def test_a_step_runs_only_the_state_operations_its_update_needs(name, needed):
    """With the grid on the host every coefficient is a Python float, so a step's torch
    operations are its state updates alone; evaluating the schedule at 0-d times took 22
    (euler), 14 (ddim) and 30 (dpmpp_2m) operations a step."""
    assert _marginal_kernels(name) <= needed
