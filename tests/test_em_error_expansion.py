"""Euler–Maruyama's exact errors against its derived first-order term (theory/em_error.py).

Problem: d = 4 Gaussian data (tests.helpers seed 1) in eigen-coordinates, log-SNR grid, float64,
errors of the output law's mean and variance per eigen-direction from the exact law (no Monte
Carlo). The tolerance 0.1 on fitted slopes is that of tests/test_solver_orders.py; the expansion
is checked over N ∈ {128, 256, 512}, where the VE schedule (σ_max = 50, large O(h²) term) is in
its asymptotic range, and the VE explanation over the study's own fit range {64, 128, 256}.
"""

import numpy as np
import pytest

from sdebench.problems.gaussian import GaussianProblem
from sdebench.solvers.grids import log_snr_grid, uniform_t_grid
from sdebench.theory import get_schedule
from sdebench.theory.em_error import em_leading_error, ve_variance_coefficient
from tests.helpers import em_error_and_first_order_term, fitted_order

EXPANSION_STEPS = [128, 256, 512]
STUDY_STEPS = [64, 128, 256]
FIRST_ORDER_CASES = [("vp", 1.0), ("vp", 0.5), ("vp", 0.0), ("edm", 1.0), ("edm", 0.0),
                     ("ve", 0.5), ("ve", 0.0)]


def _problem(sde):
    return GaussianProblem.random(get_schedule(sde), 4, seed=1).eigen()


def _exact_and_predicted(problem, steps, eta):
    return em_error_and_first_order_term(problem, log_snr_grid(problem.schedule, steps), eta)


@pytest.mark.parametrize(("sde", "eta"), FIRST_ORDER_CASES)
def test_first_order_term_leaves_a_second_order_remainder(sde, eta):
    """Error = P_N + O(h²): the error is first order and the remainder after subtracting the
    derived term P_N is second order. A wrong density or propagator leaves an O(h) remainder."""
    problem = _problem(sde)
    pairs = [_exact_and_predicted(problem, n, eta) for n in EXPANSION_STEPS]
    errors = [np.linalg.norm(error) for error, _ in pairs]
    remainders = [np.linalg.norm(error - lead) for error, lead in pairs]
    assert abs(fitted_order(EXPANSION_STEPS, errors) - 1.0) <= 0.1, errors
    assert fitted_order(EXPANSION_STEPS, remainders) >= 2.0 - 0.1, remainders


def test_ve_first_order_coefficient_is_the_boundary_term():
    """f ≡ 0, c = 1, and the geometric VE schedule's log-SNR grid is uniform in t, so
    N · P_N → −½(t_max − t_min) V_e² [V̇/V²] (theory/em_error.py). N · P_N = C + D/N + O(N⁻²), so
    the Richardson value R_N = 2·(2N P_2N) − N P_N = C + O(N⁻²): its distance to C must be at most
    that between successive R (which is ≈ 3× the distance for an O(N⁻²) sequence)."""
    problem = _problem("ve")
    schedule = problem.schedule
    t_min, t_max = float(schedule.t_min), float(schedule.t_max)
    np.testing.assert_allclose(log_snr_grid(schedule, 64).numpy(),
                               uniform_t_grid(schedule, 64).numpy(), rtol=1e-12, atol=1e-15)
    coefficient = ve_variance_coefficient(schedule, problem.eigenvalues.numpy(), t_min, t_max)

    def n_times_lead(n):
        ts = uniform_t_grid(schedule, n).numpy()
        return n * em_leading_error(schedule, problem.mean.numpy(), problem.eigenvalues.numpy(),
                                    ts).variance

    scaled = {n: n_times_lead(n) for n in (2**14, 2**15, 2**16, 2**17)}
    richardson = {n: 2 * scaled[2 * n] - scaled[n] for n in (2**14, 2**15, 2**16)}
    distance = np.abs(richardson[2**16] - coefficient)
    assert (distance <= np.abs(richardson[2**15] - richardson[2**16])).all(), (richardson,
                                                                                coefficient)


def test_ve_em_looks_second_order_because_its_first_order_term_is_a_boundary_term():
    """The measured ABOVE verdict (EM on VE, order ≈ 2 at 64–256 steps) explained: the
    first-order part |C|/N is below 10 % of the whole error over the fit range, so the fitted
    slope is that of the O(h²) term."""
    problem = _problem("ve")
    schedule = problem.schedule
    coefficient = ve_variance_coefficient(schedule, problem.eigenvalues.numpy(),
                                          float(schedule.t_min), float(schedule.t_max))
    errors = [_exact_and_predicted(problem, n, 1.0)[0] for n in STUDY_STEPS]
    for n, error in zip(STUDY_STEPS, errors, strict=True):
        assert np.linalg.norm(coefficient) / n <= 0.1 * np.linalg.norm(error), (n, error)
    assert abs(fitted_order(STUDY_STEPS, [np.linalg.norm(e) for e in errors]) - 2.0) <= 0.1
