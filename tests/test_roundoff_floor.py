"""The measured round-off floor bounds the round-off that actually happens.

The float64 exact-law run of Euler, Heun and RK4 is compared with the same steps on the same
float64 grid computed in 50-digit mpmath from the SymPy schedule (an independent evaluation of
every coefficient): their difference is the run's actual round-off. It must lie below the
unit's declared floor (studies/metrics.py, λ = 10 times the measured round-off). Before the
codegen rewrite, Heun's W₂ on vp differed from this reference by 1.5e-11 at 4 steps, 1266× the
floor then declared (λ u √NFE ‖x(t_min)‖ = 1.2e-14); with the codegen fixed, that a-priori
floor was still 4.4× below the actual round-off of Heun on edm at 4 steps (5.2e-14).
"""

from __future__ import annotations

import functools

import mpmath
import pytest
import sympy

from sdebench.problems.catalogue import get_problem
from sdebench.solvers.catalogue import get_solver
from sdebench.studies.metrics import MEASURED_ROUNDOFF, UnitRun, w2
from sdebench.theory import SCHEDULES, T, get_schedule

schedule = functools.cache(get_schedule)


def mpmath_output_law(problem, ts, tableau):
    """Mean and standard deviation per eigen-coordinate of the explicit Runge–Kutta ``tableau``
    on the PF-ODE dx/dt = a_x x + a_D D(x), D(x) = μ + (sλ/(s²λ + (sσ)²))(x − sμ) (the SymPy
    schedule's (s, sσ) form, proven equal to f x − ½g²∇log p in theory/tests/test_flow.py, and
    finite at a pure-noise start), from p_{ts[0]} = N(sμ, s²λ + (sσ)²): the run is affine in x,
    so mean and std follow the same steps."""
    sched = problem.schedule
    s_of, std_of, a_x_of, a_d_of = (sympy.lambdify(T, e, "mpmath")
                                    for e in (sched.s, sched.kernel_std, *sched.pf_coefficients))
    mu = [mpmath.mpf(float(v)) for v in problem.mean]
    lam = [mpmath.mpf(float(v)) for v in problem.eigenvalues]
    ts = [mpmath.mpf(float(t)) for t in ts]

    def drift(t):
        """(a_i, b_i) with drift a_i x + b_i in coordinate i."""
        s, std, a_x, a_d = s_of(t), std_of(t), a_x_of(t), a_d_of(t)
        gains = [s * eigenvalue / (s**2 * eigenvalue + std**2) for eigenvalue in lam]
        return [(a_x + a_d * gain, a_d * m * (1 - s * gain)) for gain, m in zip(gains, mu, strict=True)]

    s0, std0 = s_of(ts[0]), std_of(ts[0])
    state = [[s0 * m, mpmath.sqrt(s0**2 * eigenvalue + std0**2)]
             for m, eigenvalue in zip(mu, lam, strict=True)]
    a, b, c = ([[mpmath.mpf(v) for v in row] for row in tableau.a], [mpmath.mpf(v) for v in tableau.b],
               [mpmath.mpf(v) for v in tableau.c])
    for t_cur, t_next in zip(ts[:-1], ts[1:], strict=True):
        dt = t_next - t_cur
        fields = [drift(t_cur + ci * dt) for ci in c]
        for i, (mean, std) in enumerate(state):
            slopes = []
            for j, field in enumerate(fields):
                stage_mean = mean + dt * sum(a[j][q] * slopes[q][0] for q in range(j))
                stage_std = std + dt * sum(a[j][q] * slopes[q][1] for q in range(j))
                slope_a, slope_b = field[i]
                slopes.append((slope_a * stage_mean + slope_b, slope_a * stage_std))
            state[i] = [mean + dt * sum(bj * k[0] for bj, k in zip(b, slopes, strict=True)),
                        std + dt * sum(bj * k[1] for bj, k in zip(b, slopes, strict=True))]
    return state


@pytest.mark.parametrize("name", SCHEDULES.names())
@pytest.mark.parametrize("sampler", ["euler", "heun", "rk4"])
@pytest.mark.parametrize("steps", [4, 64])
def test_measured_floor_bounds_the_actual_roundoff(name, sampler, steps):
    problem = get_problem("gaussian", schedule(name), dim=4, seed=0)
    solver = get_solver(sampler)
    run = UnitRun(problem, solver, steps, grid="auto", batch=16, seed=0)
    sched = schedule(name)
    with mpmath.workdps(50):
        exact = mpmath_output_law(problem, run.ts, solver.tableau)
        got = [(mpmath.mpf(float(m)), mpmath.mpf(float(sd)))
               for m, sd in zip(run.law.mean, run.law.variance.sqrt(), strict=True)]
        law_error = mpmath.sqrt(sum((m - e[0]) ** 2 + (sd - abs(e[1])) ** 2
                                    for (m, sd), e in zip(got, exact, strict=True)))
        t_min = mpmath.mpf(float(run.ts[-1]))
        s1, sigma1 = (sympy.lambdify(T, e, "mpmath")(t_min) for e in (sched.s, sched.sigma))
        exact_w2 = mpmath.sqrt(sum(
            (e[0] - s1 * mpmath.mpf(float(m))) ** 2
            + (abs(e[1]) - s1 * mpmath.sqrt(mpmath.mpf(float(eigenvalue)) + sigma1**2)) ** 2
            for e, m, eigenvalue in zip(exact, problem.mean, problem.eigenvalues, strict=True)))
    measurement = w2(run)
    assert measurement.floor_kind == MEASURED_ROUNDOFF
    # the law's round-off (norm of the error in means and stds) and the W₂ it moves, both bounded
    assert float(law_error) <= measurement.floor, (float(law_error), measurement.floor)
    assert abs(measurement.value - float(exact_w2)) <= measurement.floor, (
        measurement.value, float(exact_w2), measurement.floor)
