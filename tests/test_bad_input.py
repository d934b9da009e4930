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


@pytest.mark.parametrize(("kwargs", "value", "message"), [
    ({"low": 0}, -5, "s must be a finite number >= 0, got -5"),
    ({"low": 0}, float("nan"), "s must be a finite number >= 0, got nan"),
    ({"low": 0, "low_open": True}, float("inf"), "s must be a finite number > 0, got inf"),
    ({"low": 0, "high": 2, "low_open": True, "high_open": True}, 2, r"in \(0, 2\), got 2"),
    ({"high": 1}, 1.5, "s must be a finite number <= 1, got 1.5"),
    ({"low": 1, "integer": True}, 1.5, "s must be an integer >= 1, got 1.5"),
    ({}, "abc", "s must be a finite number, got 'abc'"),
    ({}, True, "s must be a finite number, got True"),
])
def test_check_number_names_the_value_and_its_range(kwargs, value, message):
    from sdebench.registry import check_number

    with pytest.raises(ValueError, match=message):
        check_number("s", value, **kwargs)


def test_check_number_keeps_good_values_and_takes_exact_numbers():
    import sympy

    from sdebench.registry import check_number

    assert check_number("n", 2.0, low=1, integer=True) == 2
    assert isinstance(check_number("n", 2.0, low=1, integer=True), int)
    assert check_number("s", sympy.Rational(1, 10), low=0) == sympy.Rational(1, 10)


@pytest.mark.parametrize(("spec", "message"), [
    ("ddim:eta=abc", "sampler 'ddim': eta must be a number, got 'abc'"),
    ("ddim:eta=True", "sampler 'ddim': eta must be a number, got True"),
    ("ddim:eta=None", "sampler 'ddim': eta must be a number, got None"),
    ("pc:n_corrector=1.5", "sampler 'pc': n_corrector must be an integer, got 1.5"),
    ("edm_stochastic:s_max=abc", "s_max must be a number or None, got 'abc'"),
    ("edm_stochastic:s_churn=-5", r"sampler 'edm_stochastic:s_churn=-5': s_churn must be a "
                                  "finite number >= 0, got -5"),
    ("ddim:eat=0.3", r"takes no parameter 'eat' \(did you mean 'eta'\?\)"),
    ("eulr", r"unknown sampler 'eulr' \(did you mean 'euler'\?\)"),
])
def test_spec_values_are_typed_against_the_parameter(spec, message):
    """A string where a number is expected used to reach the factory's comparison ("'<=' not
    supported between float and str"); True passed as 1.0."""
    from sdebench.registry import SpecError

    with pytest.raises((SpecError, ValueError), match=message):
        get_solver(spec)


def test_spec_values_of_other_number_types_reach_the_factory():
    """The type check refuses only what a spec can hold that is no number (strings, True, None,
    containers): numpy and SymPy numbers from Python code pass."""
    import numpy as np
    import sympy

    from sdebench.registry import Spec

    assert get_solver(Spec("ddim", {"eta": np.float64(0.25)})).eta == 0.25
    assert get_solver("pc:n_corrector=2.0").n_corrector == 2
    assert get_schedule(Spec("vp", {"beta_max": sympy.Rational(10)})).name == "vp:beta_max=10"


def test_a_factory_error_names_the_spec_and_keeps_its_type():
    from sdebench.theory import ScheduleError

    with pytest.raises(ScheduleError, match=r"^schedule 'vp:t_min=2': empty time range"):
        get_schedule("vp:t_min=2")
    with pytest.raises(ValueError, match=r"^schedule 'vp:beta_max=-1': beta_max must be a finite "
                                         "number > 0, got -1"):
        get_schedule("vp:beta_max=-1")


@pytest.mark.parametrize(("spec", "message"), [
    ("vp:beta_max", "'beta_max' is not a key=value parameter"),
    ("edm:sigma_min=-1", "sigma_min must be a finite number >= 0, got -1"),
    ("ve:sigma_max=0.001", "sigma_max must be a finite number > 0.01, got 1/1000"),
    ("vp_cosine:offset=-0.1", "offset must be a finite number >= 0"),
    ("subvp:beta_min=-1", "beta_min must be a finite number >= 0, got -1"),
    ("vp:beta_max=inf", "beta_max must be a finite real number, got inf"),
])
def test_schedule_parameters_are_refused_by_name(spec, message):
    with pytest.raises(ValueError, match=message):
        get_schedule(spec)


def test_constant_beta_vp_inverts_sigma():
    """β_min = β_max made σ⁻¹'s closed form divide by β_max − β_min = 0: NaN, and a logsnr grid of
    repeated t_min. With B = βt it is t = log(1 + σ²)/β; the round trip is exact to one float64
    ulp of t ≤ 1 (2.2e-16; 4 ulps allowed for exp/log1p rounding), and the logsnr grid's λ steps
    are equal to the same relative round-off."""
    schedule = get_schedule("vp:beta_min=20:beta_max=20")
    numeric = schedule.numeric
    t = torch.linspace(float(schedule.t_min), float(schedule.t_max), 101, dtype=torch.float64)
    assert (numeric.sigma_inv(numeric.sigma(t)) - t).abs().max() <= 4 * torch.finfo(t.dtype).eps
    steps = numeric.half_log_snr(log_snr_grid(schedule, 8)).diff()
    torch.testing.assert_close(steps, steps[:1].expand(8), rtol=1e-12, atol=0)


def test_logsnr_grid_names_a_zero_sigma_end_and_the_grids_that_reach_it():
    """σ(t_min) = 0 (edm:sigma_min=0) gave a logsnr grid with NaN: λ = −log σ is infinite there."""
    schedule = get_schedule("edm:sigma_min=0")
    with pytest.raises(ValueError, match=r"grid 'logsnr': needs a finite log-SNR .* 0 at t_min "
                                         r"\(λ = -4.38203, inf\): use --grid edm or --grid uniform"):
        make_grid("logsnr", schedule, 4)
    assert make_grid("edm", schedule, 4)[-1] == 0


@pytest.mark.parametrize(("source", "message"), [
    ("def broken(:\n    pass\n", r"syntax error in .*bad_plugin.py, line 1: invalid syntax"),
    ("x = 1\nraise RuntimeError('boom')\n", r"it raised RuntimeError at .*bad_plugin.py, line 2: boom"),
])
def test_a_broken_plugin_is_named_with_its_line(tmp_path, source, message):
    import sys

    from sdebench.registry import SpecError, import_module

    path = tmp_path / "bad_plugin.py"
    path.write_text(source)
    with pytest.raises(SpecError, match=message):
        import_module(str(path))
    assert "bad_plugin" not in sys.modules
