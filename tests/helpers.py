"""Shared helpers for the solver tests: exact-law errors and log-log order fits."""

from __future__ import annotations

import numpy as np

from sdebench.problems.gaussian import GaussianProblem
from sdebench.problems.law import ExactLawNoise
from sdebench.solvers.catalogue import get_solver
from sdebench.solvers.grids import make_grid
from sdebench.solvers.loop import sample
from sdebench.solvers.sde import EulerMaruyama
from sdebench.theory import get_schedule
from sdebench.theory.em_error import em_leading_error


def exact_law_w2(solver_name: str, problem: GaussianProblem, grid: str, steps: int) -> float:
    """W₂ between a solver's exact output law (started from exact p_{t_max}) and p_{t_min}."""
    ts = make_grid(grid, problem.schedule, steps)
    result = sample(get_solver(solver_name), problem.denoiser, problem.schedule, problem.marginal_law(ts[0]),
                    ts, noise=ExactLawNoise())
    return float(problem.w2(result.x, ts[-1]))


def em_error_and_first_order_term(problem: GaussianProblem, ts, noise_scale: float):
    """Euler–Maruyama (h-family, ``noise_scale`` η) exact output law over ``ts`` (a problem in
    eigen-coordinates): its errors of mean and variance per direction, and the derived first-order
    term of theory/em_error.py, each stacked as [mean, variance] arrays."""
    schedule = problem.schedule
    law = sample(EulerMaruyama(noise_scale), problem.denoiser, schedule,
                 problem.marginal_law(ts[0]), ts, noise=ExactLawNoise()).x
    exact = problem.marginal_law(ts[-1])
    error = np.concatenate([(law.mean - exact.mean).numpy(),
                            (law.variance - exact.variance).numpy()])
    lead = em_leading_error(schedule, problem.mean.numpy(), problem.eigenvalues.numpy(),
                            ts.numpy(), noise_scale)
    return error, np.concatenate([lead.mean, lead.variance])


def fitted_order(steps: list[int], errors: list[float]) -> float:
    """−slope of the least-squares line through (log N, log error)."""
    slope, _ = np.polyfit(np.log(steps), np.log(errors), 1)
    return -float(slope)


def vp_problem(dim: int = 4, seed: int = 1) -> GaussianProblem:
    return GaussianProblem.random(get_schedule("vp"), dim, seed=seed)
