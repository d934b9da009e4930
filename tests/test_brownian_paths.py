"""BrownianGrid: the exact law of Brownian motion at declared times, one path at every
resolution, per-sample streams. Monte Carlo checks use n = 20 000 paths of a seeded path, so
their outcome is fixed; each bound is 4 standard errors of the statistic (a false alarm has
probability < 1e-4 per check for an unseeded draw)."""

import math

import pytest
import torch

from sdebench.solvers.catalogue import get_solver
from sdebench.solvers.grids import uniform_t_grid
from sdebench.solvers.loop import sample
from sdebench.solvers.noise import BrownianGrid
from tests.helpers import fitted_order, vp_problem

N = 20_000
TIMES = [0.0, 0.1, 0.35, 0.7, 1.0]


@pytest.fixture(scope="module")
def values():
    """W(t) at TIMES for N independent paths (W(0) = 0)."""
    grid = BrownianGrid(TIMES, seed=17)
    like = torch.zeros(N, 1, dtype=torch.float64)
    return {t: grid.increment(0.0, t, like)[:, 0] for t in TIMES[1:]}


def test_marginals_are_n_0_t(values):
    for t, w in values.items():
        assert abs(float(w.mean())) <= 4 * math.sqrt(t / N), t  # SE of the mean: √(t/N)
        # SE of the sample variance of N(0, t): t √(2/(N − 1))
        assert abs(float(w.var()) - t) <= 4 * t * math.sqrt(2 / (N - 1)), t


def test_covariances_are_min_s_t(values):
    """Cov(W(s), W(t)) = min(s, t); the SE of the sample covariance of jointly Gaussian X, Y is
    √((Var X Var Y + Cov²)/N) = √((s t + s²)/N) for s < t."""
    for s in TIMES[1:]:
        for t in TIMES[1:]:
            if s < t:
                covariance = float((values[s] * values[t]).mean())
                assert abs(covariance - s) <= 4 * math.sqrt((s * t + s * s) / N), (s, t)


def test_disjoint_increments_are_uncorrelated(values):
    """Sample correlation of independent variables has SE ≈ 1/√N."""
    first = values[0.1]
    later = values[0.7] - values[0.35]
    correlation = float(torch.corrcoef(torch.stack([first, later]))[0, 1])
    assert abs(correlation) <= 4 / math.sqrt(N)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_coarse_increments_are_sums_of_fine_ones(dtype):
    fine = torch.linspace(1.0, 0.0, 65, dtype=torch.float64)
    grid = BrownianGrid(fine, seed=3)
    like = torch.zeros(100, 3, dtype=dtype)
    for start in range(0, 64, 8):  # coarse step = 8 fine steps, as the study's reference grid
        coarse = grid.increment(fine[start].to(dtype), fine[start + 8].to(dtype), like)
        summed = sum(grid.increment(fine[k].to(dtype), fine[k + 1].to(dtype), like)
                     for k in range(start, start + 8))
        # round-off of the prefix sums: a few ulps of |W| ≤ 5 (5 SD of W(1))
        torch.testing.assert_close(coarse, summed, rtol=0, atol=40 * torch.finfo(dtype).eps)


def test_per_sample_streams_do_not_depend_on_batch_mates():
    seeds = list(range(50, 56))
    times = [0.0, 0.25, 0.5, 1.0]
    whole = BrownianGrid(times, seeds=seeds).increment(1.0, 0.25, torch.zeros(6, 2))
    part = BrownianGrid(times, seeds=seeds[2:]).increment(1.0, 0.25, torch.zeros(4, 2))
    torch.testing.assert_close(part, whole[2:], rtol=0, atol=0)


def test_undeclared_times_are_refused():
    grid = BrownianGrid([0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="0.3 is not one of the BrownianGrid's declared times"):
        grid.increment(0.5, 0.3, torch.zeros(2, 1))
    with pytest.raises(ValueError, match="at least two distinct"):
        BrownianGrid([0.5, 0.5])


def test_euler_maruyama_strong_order_on_a_brownian_grid():
    """The strong-order test of tests/test_solver_orders.py (VP, d = 2, M = 256 paths, N = 16…128
    against 2048 steps, tolerance 0.15 from the ≈ 6 % standard error of each mean) with the
    path drawn once on the union of all grids instead of a tree."""
    problem = vp_problem(dim=2, seed=3)
    schedule = problem.schedule
    steps = [16, 32, 64, 128]
    grids = {n: uniform_t_grid(schedule, n) for n in [*steps, 2048]}
    path = BrownianGrid(torch.cat(list(grids.values())), seed=11)
    x_start = problem.sample_marginal(grids[16][0], 256, torch.Generator().manual_seed(0))

    def solve(n):
        return sample(get_solver("euler_maruyama"), problem.denoiser, schedule, x_start, grids[n],
                      noise=path).x

    reference = solve(2048)
    errors = [float((solve(n) - reference).norm(dim=1).mean()) for n in steps]
    assert abs(fitted_order(steps, errors) - 1.0) <= 0.15, errors
