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
    for attr in ("s", "sigma", "f", "g2"):
        fn = getattr(schedule.numeric, attr)
        got = fn(ts)
        assert got.dtype == dtype and got.shape == ts.shape
        expr = getattr(schedule, attr)
        for t, value in zip(ts.tolist(), got.tolist(), strict=True):
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
