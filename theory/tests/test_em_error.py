"""The Euler–Maruyama error expansion of theory/em_error.py: the steps of its derivation.

Each residual is proven zero symbolically for the generic kernel (undefined s(t), σ(t)) and
checked for every catalogue schedule; the VE corollary holds exactly when f ≡ 0.
"""

import sympy

from sdebench.theory import generic_kernel
from sdebench.theory.claims.common import MU, V0
from sdebench.theory.em_error import (
    ETA,
    STEP,
    one_step_residuals,
    propagator_residual,
    total_derivative_residual,
)
from sdebench.theory.kernel import Kernel, T
from sdebench.theory.testing import assert_vanishes, midpoint_time
from sdebench.theory.verify import is_nonzero_somewhere

EXTRA_RANGES = {ETA: (0.0, 2.0), STEP: (1e-3, 1e-1)}


def test_one_step_mean_error_is_h2_times_the_density(kernel):
    assert_vanishes(one_step_residuals(kernel)[0], kernel, hide=None, extra_ranges=EXTRA_RANGES)


def test_one_step_variance_error_is_h2_times_the_density(kernel):
    assert_vanishes(one_step_residuals(kernel)[1], kernel, hide=None, extra_ranges=EXTRA_RANGES)


def test_error_propagator_integrates_the_damping_rate(kernel):
    assert_vanishes(propagator_residual(kernel), kernel, hide=None, extra_ranges=EXTRA_RANGES)


def test_variance_density_is_a_total_derivative_when_f_vanishes():
    """s ≡ 1 with an arbitrary σ(t): the VE family, the case the corollary covers."""
    sigma = sympy.Function("sigma", positive=True)(T)
    assert_vanishes(total_derivative_residual(Kernel(sympy.Integer(1), sigma, name="generic")),
                    generic_kernel(), hide=None)


def test_variance_density_is_not_a_total_derivative_for_vp():
    """Negative control: with f ≠ 0 (VP) the corollary's residual is clearly nonzero."""
    from sdebench.theory import get_schedule

    schedule = get_schedule("vp")
    point = {T: midpoint_time(schedule), V0: 0.5, MU: 1.0}
    assert is_nonzero_somewhere(total_derivative_residual(schedule), point)
