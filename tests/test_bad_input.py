"""Bad input raises a clear error that names the problem; nothing is clipped silently."""

import pytest
import torch

from sdebench.solvers.catalogue import get_solver
from sdebench.solvers.context import NonFiniteError
from sdebench.solvers.grids import log_snr_grid, make_grid, uniform_t_grid
from sdebench.solvers.loop import sample
from sdebench.theory import get_schedule
from tests.helpers import vp_problem


@pytest.fixture
def setup():
    problem = vp_problem()
    ts = log_snr_grid(problem.schedule, 4)
    return problem, ts, problem.sample_marginal(ts[0], 5)


def test_increasing_grid(setup):
    problem, ts, x = setup
    with pytest.raises(ValueError, match="strictly decreasing"):
        sample(get_solver("euler"), problem.denoiser, problem.schedule, x, ts.flip(0))


def test_repeated_time(setup):
    problem, ts, x = setup
    bad = torch.cat([ts[:2], ts[1:]])
    with pytest.raises(ValueError, match="strictly decreasing"):
        sample(get_solver("euler"), problem.denoiser, problem.schedule, x, bad)


def test_grid_outside_schedule(setup):
    problem, ts, x = setup
    with pytest.raises(ValueError, match="leaves the schedule's range"):
        sample(get_solver("euler"), problem.denoiser, problem.schedule, x, ts * 2)


@pytest.mark.parametrize("steps", [0, -1, 2.5, True])
def test_steps_below_one(steps):
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        uniform_t_grid(get_schedule("vp"), steps)


def test_single_point_grid(setup):
    problem, ts, x = setup
    with pytest.raises(ValueError, match="at least 2 points"):
        sample(get_solver("euler"), problem.denoiser, problem.schedule, x, ts[:1])


def test_integer_state(setup):
    problem, ts, _ = setup
    with pytest.raises(ValueError, match="floating"):
        sample(get_solver("euler"), problem.denoiser, problem.schedule,
               torch.zeros(5, 4, dtype=torch.int64), ts)


def test_unbatched_state(setup):
    problem, ts, _ = setup
    with pytest.raises(ValueError, match="batch"):
        sample(get_solver("euler"), problem.denoiser, problem.schedule,
               torch.zeros(4, dtype=torch.float64), ts)


def test_grid_on_another_accelerator_than_the_state(setup):
    """The grid may stay on the CPU while x is on an accelerator, but not sit on a third device."""
    problem, ts, x = setup
    with pytest.raises(ValueError, match="x is on cpu but the time grid is on meta"):
        sample(get_solver("euler"), problem.denoiser, problem.schedule, x, ts.to("meta"))


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("check_finite", ["step", "end", "auto"])
def test_model_returning_nan_or_inf_names_step_and_time(setup, bad_value, check_finite):
    """One bad entry in step 2's output is found by every mode; "step" (and "auto", on the CPU)
    stops at step 2, "end" runs to the end (no per-step host sync) and then names the same step."""
    problem, ts, x = setup
    steps_run = []

    def broken(x, t):
        out = problem.denoiser(x, t)
        if float(t) < float(ts[1]):
            out = out.clone()
            out[1, 2] = bad_value
        return out

    with pytest.raises(NonFiniteError, match=r"step 2 \(t = "):
        sample(get_solver("euler"), broken, problem.schedule, x, ts, check_finite=check_finite,
               callback=lambda i, *_: steps_run.append(i))
    assert len(steps_run) == (len(ts) - 1 if check_finite == "end" else 2)


def test_rk45_stops_on_nan_with_the_deferred_check(setup):
    """With check_finite="end" (the GPU default) a NaN model output no longer raises in the
    loop; rk45's error ratio was then NaN and its step size shrank forever."""
    problem, ts, x = setup
    with pytest.raises(NonFiniteError, match="rk45: non-finite error estimate"):
        sample(get_solver("rk45"), lambda x, t: x * float("nan"), problem.schedule, x, ts,
               check_finite="end")


def test_rk45_says_when_its_tolerance_cannot_be_met(setup):
    """A tolerance below round-off shrank rk45's step to 0.0, after which it accepted zero-length
    steps forever."""
    problem, ts, x = setup
    with pytest.raises(FloatingPointError, match="rk45: step size .* underflows"):
        sample(get_solver("rk45:rtol=1e-300:atol=1e-300"), problem.denoiser, problem.schedule, x,
               ts)


def test_finite_checks_can_be_turned_off_or_rejected(setup):
    problem, ts, x = setup
    result = sample(get_solver("euler"), lambda x, t: x * float("nan"), problem.schedule, x, ts,
                    check_finite="off")
    assert torch.isnan(result.x).all()
    with pytest.raises(ValueError, match="check_finite must be one of"):
        sample(get_solver("euler"), problem.denoiser, problem.schedule, x, ts, check_finite="sometimes")


def test_model_returning_wrong_shape(setup):
    problem, ts, x = setup
    with pytest.raises(ValueError, match="model returned shape"):
        sample(get_solver("euler"), lambda x, t: x[:, :2], problem.schedule, x, ts)


def test_unknown_sampler_and_grid():
    with pytest.raises(ValueError, match="unknown sampler 'nope'"):
        get_solver("nope")
    with pytest.raises(ValueError, match="unknown grid"):
        make_grid("nope", get_schedule("vp"), 3)


@pytest.mark.parametrize("kwargs", [{"eta": -0.1}, {"eta": 1.5}])
def test_bad_ddim_eta(kwargs):
    from sdebench.solvers.exponential import DDIM

    with pytest.raises(ValueError, match="eta"):
        DDIM(**kwargs)


def test_nan_initial_state(setup):
    problem, ts, x = setup
    x = x.clone()
    x[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        sample(get_solver("euler"), problem.denoiser, problem.schedule, x, ts)


def test_model_returning_a_numpy_array_is_named(setup):
    """A model returning a numpy array used to fail with an AttributeError deep in a step."""
    problem, ts, x = setup
    with pytest.raises(TypeError, match="must return a torch.Tensor shaped like x, got "
                                        "numpy.ndarray at step 0"):
        sample(get_solver("euler"), lambda x, t: problem.denoiser(x, t).numpy(), problem.schedule,
               x, ts)


def test_a_nan_state_is_caught_even_when_the_model_is_finite(setup):
    """States are checked, not only model outputs (e.g. a solver dividing by σ(t_next) = 0)."""
    problem, ts, x = setup
    from sdebench.solvers.context import NonFiniteError

    class Blows(type(get_solver("euler"))):
        def step(self, ctx, x, t_cur, t_next, state):
            x, state = super().step(ctx, x, t_cur, t_next, state)
            return (x / 0 * 0 if ctx.step_index == 2 else x), state

    for mode in ("step", "end"):
        with pytest.raises(NonFiniteError, match=r"the state became NaN/Inf at step 2"):
            sample(Blows(), problem.denoiser, problem.schedule, x, ts, check_finite=mode)
