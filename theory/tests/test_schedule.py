"""Schedule validation, inverse σ, and the lambdified numeric twin."""

import pytest
import sympy
import torch

from sdebench.theory import SCHEDULES, Schedule, ScheduleError, T, get_schedule
from sdebench.theory.claims.common import sampling_ranges
from sdebench.theory.schedule import SIGMA
from sdebench.theory.verify import prove_zero


@pytest.mark.parametrize("name", SCHEDULES.names())
def test_sigma_inverse_round_trips_symbolically(name):
    schedule = get_schedule(name)
    roundtrip = schedule.sigma_inverse.subs(SIGMA, schedule.sigma)
    assert prove_zero(roundtrip - T, sampling_ranges(schedule), symbolic=False)


@pytest.mark.parametrize("name", SCHEDULES.names())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_numeric_matches_symbolic(name, dtype):
    """Lambdified f, g², σ agree with 30-digit SymPy values to a few ulps of the dtype."""
    schedule = get_schedule(name)
    ts = torch.linspace(float(schedule.t_min), float(schedule.t_max), 7, dtype=dtype)
    eps = torch.finfo(dtype).eps
    for attr in ("s", "sigma", "kernel_std", "f", "g2"):
        fn = getattr(schedule.numeric, attr)
        finite = ts[:-1] if schedule.pure_noise_end and attr not in ("s", "kernel_std") else ts
        got = fn(finite)  # σ, f, g² are infinite at a pure-noise end (t_max)
        assert got.dtype == dtype and got.shape == finite.shape
        expr = getattr(schedule, attr)
        for t, value in zip(finite.tolist(), got.tolist(), strict=True):
            exact = float(expr.subs(T, sympy.Float(t, 30)).evalf(30))
            # condition number of these expressions is < 1e3 on the range: 1e4 ulps is safe
            assert abs(value - exact) <= 1e4 * eps * max(1.0, abs(exact)), (attr, t)


def test_numeric_inverse_by_bisection_matches_closed_form():
    closed = get_schedule("vp")
    bare = Schedule("vp_no_inverse", closed.s, closed.sigma, closed.t_min, closed.t_max)
    sigmas = closed.numeric.sigma(torch.linspace(0.01, 1.0, 9, dtype=torch.float64))
    torch.testing.assert_close(
        bare.numeric.sigma_inv(sigmas), closed.numeric.sigma_inv(sigmas), rtol=0, atol=1e-13
    )


@pytest.mark.parametrize(
    "s, sigma, t_min, t_max, message",
    [
        (sympy.Integer(1), T, 1, 1, "empty time range"),
        (sympy.Integer(1), T, 2, 1, "empty time range"),
        (sympy.Integer(-1), T, 0.1, 1, "s\\(t\\) > 0"),
        (sympy.Integer(1), 2 - T, 0.1, 1, "sigma increasing"),
        (sympy.Integer(1), sympy.Symbol("c") * T, 0.1, 1, "free symbols"),
        (sympy.Integer(1), T - 1, 0.1, 1, "sigma\\(t\\) >= 0"),
    ],
)
def test_invalid_schedules_raise(s, sigma, t_min, t_max, message):
    with pytest.raises(ScheduleError, match=message):
        Schedule("bad", s, sigma, t_min, t_max)


def test_unknown_schedule_name():
    with pytest.raises(ValueError, match="unknown schedule 'nope'"):
        get_schedule("nope")


@pytest.mark.parametrize("name", ["vp", "vp_cosine", "subvp"])
@pytest.mark.parametrize("attr", ["s", "sigma", "f", "g2", "half_log_snr"])
def test_float32_near_t_min_is_accurate_to_a_few_ulps(name, attr):
    """VP's σ = √(e^B − 1) and the cosine σ = √(1/s² − 1) lost ~2e-4 / 5e-4 relative in float32
    near t_min by cancellation. Against 50-digit mpmath at float32 times t_min … 10 t_min the
    torch twin is now within 4 ulps (these functions have condition numbers ≤ 1 there, so 4 ulps
    is round-off of the few operations they take)."""
    import mpmath

    schedule = get_schedule(name)
    t_min = float(schedule.t_min)
    ts = torch.tensor([t_min, 1.5 * t_min, 2 * t_min, 5 * t_min, 10 * t_min], dtype=torch.float32)
    got = getattr(schedule.numeric, attr)(ts)
    exact = sympy.lambdify(T, getattr(schedule, attr), "mpmath")
    with mpmath.workdps(50):
        for t, value in zip(ts.tolist(), got.tolist(), strict=True):
            reference = exact(mpmath.mpf(t))
            assert abs(value - reference) <= 4 * torch.finfo(torch.float32).eps * abs(reference), (
                t, value, reference)


def test_numeric_values_cannot_be_corrupted_by_their_caller():
    """`a = n.sigma(t); a += 1` used to corrupt the memoised σ(t) for the whole process."""
    numeric = get_schedule("vp").numeric
    t = torch.tensor(0.5, dtype=torch.float64)
    first = numeric.sigma(t)
    value = float(first)
    first += 1
    assert float(numeric.sigma(t)) == value


@pytest.mark.parametrize("parameter", ["beta_min", "beta_max", "t_min", "t_max"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "abc", None])
def test_bad_parameters_are_named(parameter, bad):
    from sdebench.theory import vp_linear

    with pytest.raises(ScheduleError, match=f"{parameter} must be a finite real number"):
        vp_linear(**{parameter: bad})


def test_a_range_where_a_coefficient_diverges_is_explained():
    """vp_linear(t_min=0) used to raise an empty ZeroDivisionError: dσ/dt = ∞ at σ = 0."""
    from sdebench.theory import vp_linear

    with pytest.raises(ScheduleError, match=r"sigma increasing.*cannot be evaluated at t = 0\.0 "
                                            r"\(ZeroDivisionError: division by zero\)"):
        vp_linear(t_min=0)


@pytest.mark.parametrize("sigma", [
    sympy.erf(T) + sympy.Rational(1, 10),
    sympy.Max(T, sympy.Rational(1, 2)) + T,
    sympy.Piecewise((T, T < sympy.Rational(1, 2)), (2 * T - sympy.Rational(1, 2), True)),
], ids=["erf", "Max", "Piecewise"])
def test_schedules_with_any_sympy_function_sample(sigma):
    """Custom schedules with erf, Max or Piecewise used to pass validation and then fail while
    sampling with opaque TypeErrors; SymPy's own printers now evaluate them."""
    from sdebench.problems.gaussian import GaussianProblem
    from sdebench.solvers import get_solver, make_grid, sample

    schedule = Schedule("custom", sympy.Integer(1), sigma, sympy.Rational(1, 20), 1)
    problem = GaussianProblem.random(schedule, 3, seed=0)
    ts = make_grid("uniform", schedule, 8)
    x = problem.sample_marginal(ts[0], 4, torch.Generator().manual_seed(0))
    out = sample(get_solver("heun"), problem.denoiser, schedule, x, ts).x
    assert torch.isfinite(out).all()


def test_a_function_torch_cannot_evaluate_is_refused_when_the_schedule_is_made():
    with pytest.raises(ScheduleError, match="cannot be evaluated with torch"):
        Schedule("bessel", sympy.Integer(1), 1 + sympy.besseli(0, T), sympy.Rational(1, 10), 1)


def test_schedule_specs_take_parameters_and_name_the_result():
    schedule = get_schedule("vp:beta_max=10")
    assert schedule.name == "vp:beta_max=10"
    assert schedule.g2.subs(T, 1) == 10
    with pytest.raises(ValueError, match="takes no parameter 'rho'"):
        get_schedule("vp:rho=3")


def test_a_nan_inverse_is_refused():
    """A sigma_inverse whose round trip is NaN at every point used to pass its check (NaN > tol
    is False); the check is now ``not error <= tol``."""
    with pytest.raises(ScheduleError, match=r"sigma_inverse\(sigma\(t\)\) != t at t = 0\.2125"):
        Schedule("nan_inverse", sympy.Integer(1), T, 0.1, 1, sigma_inverse=SIGMA * sympy.nan)
