"""The checkerboard problem: a density with edges whose score is exact (issue 14's data set)."""

import math

import pytest
import torch

from sdebench.problems import get_problem
from sdebench.studies import StudyConfig, run_study
from sdebench.theory import get_schedule


def board(schedule: str = "edm"):
    return get_problem("checkerboard", get_schedule(schedule), dim=2, seed=0)


@pytest.mark.parametrize("sigma", [0.1, 0.3, 1.0])
def test_the_density_integrates_to_one(sigma):
    """Riemann sum on a 600² grid over ±(2 + 8σ): the integrand is analytic and decays like a
    Gaussian beyond the board, so the sum converges exponentially in the grid density
    (Trefethen & Weideman 2014, SIAM Rev. 56(3), §5) and the tail beyond 8σ is < 1e-14; what
    remains is round-off of the 360 000-term sum, far below 1e-9."""
    problem = board()
    half = 2 + 8 * sigma
    grid = torch.linspace(-half, half, 600, dtype=torch.float64)
    points = torch.cartesian_prod(grid, grid)
    mass = problem.log_density(points, torch.tensor(sigma, dtype=torch.float64)).exp().sum() \
        * (grid[1] - grid[0]) ** 2
    assert abs(float(mass) - 1) < 1e-9


@pytest.mark.parametrize("schedule", ["vp", "edm"])
@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.5, 1.0])
def test_the_denoiser_is_tweedie_of_the_log_density(schedule, fraction):
    """E[x₀|x_t] = (x + s²σ² ∇log p_t(x))/s (Tweedie; theory/claims/tweedie.py), the gradient by
    autograd of the log-density: two independent formulas (truncated-normal means versus
    smoothed boxes) agree to round-off, 1e-9 of the state's scale (the log-space sums and
    the gradient each lose a few hundred ulps at most for σ up to 157)."""
    schedule = get_schedule(schedule)
    problem = get_problem("checkerboard", schedule, dim=2, seed=0)
    t = torch.tensor(float(schedule.t_min) + fraction * float(schedule.t_max - schedule.t_min),
                     dtype=torch.float64)
    s, sigma = schedule.numeric.s(t), schedule.numeric.sigma(t)
    x = problem.sample_marginal(t, 500, torch.Generator().manual_seed(1)).requires_grad_(True)
    gradient, = torch.autograd.grad(problem.log_density(x, t).sum(), x)
    tweedie = (x.detach() + s**2 * sigma**2 * gradient) / s
    denoised = problem.denoiser(x.detach(), t)
    scale = float(x.detach().abs().max() / s)
    assert float((denoised - tweedie).abs().max()) <= 1e-9 * scale


def test_samples_have_the_board_moments():
    """Each coordinate of the data is uniform on [−2, 2] (every row holds k/2 black cells), so
    at σ the marginal has mean 0 and variance 4²/12 + σ²; 40 000 samples, each statistic within
    4.5 standard errors (variance SE from the fourth moment of the uniform: √((μ₄ − v²)/n))."""
    problem = board()
    t = torch.tensor(0.5, dtype=torch.float64)
    n = 40_000
    x = problem.sample_marginal(t, n, torch.Generator().manual_seed(2))
    variance = 16 / 12 + 0.25
    fourth = 4**4 / 80 + 6 * (16 / 12) * 0.25 + 3 * 0.25**2  # E(U + σZ)⁴, U ~ U(−2, 2)
    assert (x.mean(0).abs() / math.sqrt(variance / n)).max() < 4.5
    assert ((x.var(0) - variance).abs() / math.sqrt((fourth - variance**2) / n)).max() < 4.5


def test_a_study_runs_on_the_checkerboard():
    study = run_study(StudyConfig(schedules=["vp"], samplers=["heun"], steps=[8, 16, 32],
                                  problem="checkerboard", dim=2, batch=64),
                      progress=False, trajectories=False)
    assert set(study.results.metric) == {"nll", "sliced_w2"}
    assert (study.results.status == "ok").all()


def test_the_board_is_two_dimensional():
    with pytest.raises(ValueError, match="checkerboard.*dim"):
        get_problem("checkerboard", get_schedule("vp"), dim=3, seed=0)
