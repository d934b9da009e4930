"""Bad input raises a clear error that names the problem; nothing is clipped silently."""

import pytest
import torch

from solvers.base import NonFiniteError, sample
from solvers.grids import log_snr_grid, make_grid, uniform_t_grid
from solvers.registry import get_solver
from tests.helpers import vp_problem
from theory import get_schedule


@pytest.fixture
def setup():
    problem = vp_problem()
    ts = log_snr_grid(problem.schedule, 4)
    return problem, ts, problem.sample_marginal(ts[0], 5)


def test_increasing_grid(setup):
    problem, ts, x = setup
    with pytest.raises(ValueError, match="strictly decreasing"):
        sample("euler", problem.denoiser, problem.schedule, x, ts.flip(0))


def test_repeated_time(setup):
    problem, ts, x = setup
    bad = torch.cat([ts[:2], ts[1:]])
    with pytest.raises(ValueError, match="strictly decreasing"):
        sample("euler", problem.denoiser, problem.schedule, x, bad)


def test_grid_outside_schedule(setup):
    problem, ts, x = setup
    with pytest.raises(ValueError, match="leaves the schedule's range"):
        sample("euler", problem.denoiser, problem.schedule, x, ts * 2)


@pytest.mark.parametrize("steps", [0, -1, 2.5, True])
def test_steps_below_one(steps):
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        uniform_t_grid(get_schedule("vp"), steps)


def test_single_point_grid(setup):
    problem, ts, x = setup
    with pytest.raises(ValueError, match="at least 2 points"):
        sample("euler", problem.denoiser, problem.schedule, x, ts[:1])


def test_integer_state(setup):
    problem, ts, _ = setup
    with pytest.raises(ValueError, match="floating"):
        sample("euler", problem.denoiser, problem.schedule, torch.zeros(5, 4, dtype=torch.int64), ts)


def test_unbatched_state(setup):
    problem, ts, _ = setup
    with pytest.raises(ValueError, match="batch"):
        sample("euler", problem.denoiser, problem.schedule, torch.zeros(4, dtype=torch.float64), ts)


def test_device_mismatch(setup):
    problem, ts, _ = setup
    with pytest.raises(ValueError, match="device|is on"):
        sample("euler", problem.denoiser, problem.schedule, torch.zeros(5, 4, device="meta"), ts)


def test_model_returning_nan_names_step_and_time(setup):
    problem, ts, x = setup

    def broken(x, t):
        out = problem.denoiser(x, t)
        return out * float("nan") if float(t) < float(ts[1]) else out

    with pytest.raises(NonFiniteError, match=r"step 2 \(t = "):
        sample("euler", broken, problem.schedule, x, ts)


def test_model_returning_wrong_shape(setup):
    problem, ts, x = setup
    with pytest.raises(ValueError, match="model returned shape"):
        sample("euler", lambda x, t: x[:, :2], problem.schedule, x, ts)


def test_unknown_sampler_and_grid():
    with pytest.raises(ValueError, match="unknown sampler 'nope'"):
        get_solver("nope")
    with pytest.raises(ValueError, match="unknown grid"):
        make_grid("nope", get_schedule("vp"), 3)


@pytest.mark.parametrize("kwargs", [{"eta": -0.1}, {"eta": 1.5}])
def test_bad_ddim_eta(kwargs):
    from solvers.exponential import DDIM

    with pytest.raises(ValueError, match="eta"):
        DDIM(**kwargs)


def test_nan_initial_state(setup):
    problem, ts, x = setup
    x = x.clone()
    x[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        sample("euler", problem.denoiser, problem.schedule, x, ts)
