"""The exact output law agrees with 10⁶ Monte Carlo samples for every sampler.

VP, d = 2 diagonal Gaussian data, 8 log-SNR steps, float64, n = 10⁶ samples started from exact
p_{t_max}. For each coordinate: |sample mean − law mean| ≤ 4 √(v/n) and
|sample variance − law variance| ≤ 4 v √(2/(n−1)) (normal-theory standard errors; the output is
exactly Gaussian). 4 standard errors: a false alarm has probability ≈ 6·10⁻⁵ per check.
"""

import math

import pytest
import torch

from sdebench.problems.law import ExactLawNoise
from sdebench.solvers.catalogue import BUILTIN_SAMPLERS, get_solver
from sdebench.solvers.grids import log_snr_grid
from sdebench.solvers.loop import sample
from sdebench.solvers.noise import GaussianIncrements
from tests.helpers import vp_problem

SAMPLES = 10**6


@pytest.mark.parametrize("name", BUILTIN_SAMPLERS)
def test_exact_law_matches_monte_carlo(name):
    problem = vp_problem(dim=2, seed=5)
    ts = log_snr_grid(problem.schedule, 8)
    law = sample(get_solver(name), problem.denoiser, problem.schedule, problem.marginal_law(ts[0]), ts,
                 noise=ExactLawNoise()).x
    x = problem.sample_marginal(ts[0], SAMPLES, torch.Generator().manual_seed(1))
    out = sample(get_solver(name), problem.denoiser, problem.schedule, x, ts, noise=GaussianIncrements(7)).x
    mean, variance = out.mean(0), out.var(0)
    se_mean = torch.sqrt(law.variance / SAMPLES)
    se_var = law.variance * math.sqrt(2 / (SAMPLES - 1))
    assert ((mean - law.mean).abs() <= 4 * se_mean).all(), (mean, law.mean, se_mean)
    assert ((variance - law.variance).abs() <= 4 * se_var).all(), (variance, law.variance, se_var)
