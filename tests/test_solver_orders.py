"""Each solver's measured order on the exact-law Gaussian problem agrees with its declared order.

Problem: VP schedule, d = 4 Gaussian data (condition number 100), log-SNR grid, float64; the error
is W₂ between the solver's exact output law and p_{t_min}, so there is no Monte Carlo noise.
Fit range N ∈ {64, 128, 256}. Tolerance 0.1: with error = C h^p (1 + O(h)) the fitted slope is
p + O(h); over this range successive local slopes of every solver differ by < 0.05 (measured once
in the development log), so 0.1 leaves a factor-2 margin yet rejects a wrong order (≥ 0.5 off).
"""

import pytest
import torch

from sdebench.problems.law import ExactLawNoise
from sdebench.solvers.catalogue import BUILTIN_SAMPLERS, get_solver
from sdebench.solvers.grids import uniform_t_grid
from sdebench.solvers.loop import sample
from sdebench.solvers.noise import BrownianTree
from sdebench.solvers.ode import DormandPrince45
from tests.helpers import exact_law_w2, fitted_order, vp_problem

ORDER_STEPS = [64, 128, 256]
ORDERED = [name for name in BUILTIN_SAMPLERS if get_solver(name).order is not None]
UNORDERED = [name for name in BUILTIN_SAMPLERS if get_solver(name).order is None]


@pytest.mark.parametrize("name", ORDERED)
def test_measured_order_matches_declared(name):
    problem = vp_problem()
    errors = [exact_law_w2(name, problem, "logsnr", n) for n in ORDER_STEPS]
    measured = fitted_order(ORDER_STEPS, errors)
    assert abs(measured - get_solver(name).order) <= 0.1, (errors, measured)


@pytest.mark.parametrize("name", UNORDERED)
def test_solvers_without_order_say_why(name):
    assert len(get_solver(name).order_note) > 20


def test_rk45_error_follows_tolerance():
    """Adaptive RK45 with rtol = atol = τ: the final W₂ error is O(τ); tightening τ by 100
    must reduce the error by at least 10 (fifth-order local control, τ^{4/5} globally at worst)."""
    problem = vp_problem()
    ts = torch.tensor([problem.schedule.numeric.t_max, problem.schedule.numeric.t_min],
                      dtype=torch.float64)
    errors = []
    for tol in (1e-4, 1e-6):
        result = sample(DormandPrince45(tol, tol), problem.denoiser, problem.schedule,
                        problem.marginal_law(ts[0]), ts, noise=ExactLawNoise())
        errors.append(float(problem.w2(result.x, ts[-1])))
    assert errors[1] * 10 <= errors[0], errors
    assert get_solver("rk45").order is None


def test_euler_maruyama_strong_order_is_one():
    """Pathwise error against a 2048-step EM reference on the *same* Brownian paths
    (BrownianTree), M = 256 paths, d = 2, VP, uniform t grid N ∈ {16, …, 128}.

    Note 001 claims strong order ½; for additive noise EM = Milstein has strong order 1
    (Kloeden & Platen 1992, Thm. 10.3.5). The Monte Carlo relative standard error of each mean
    error is ≈ 1/√M ≈ 6 %, correlated across N (same paths), giving a slope uncertainty < 0.1;
    tolerance 0.15 separates 1 from ½ by more than 3×."""
    problem = vp_problem(dim=2, seed=3)
    schedule = problem.schedule
    generator = torch.Generator().manual_seed(0)
    t_max = torch.tensor(float(schedule.t_max), dtype=torch.float64)
    x_start = problem.sample_marginal(t_max, 256, generator)
    tree = BrownianTree(float(schedule.t_min), float(schedule.t_max), seed=11)

    def solve(steps):
        ts = uniform_t_grid(schedule, steps)
        return sample(get_solver("euler_maruyama"), problem.denoiser, schedule, x_start, ts, noise=tree).x

    reference = solve(2048)
    steps = [16, 32, 64, 128]
    errors = [float((solve(n) - reference).norm(dim=1).mean()) for n in steps]
    assert abs(fitted_order(steps, errors) - 1.0) <= 0.15, errors
