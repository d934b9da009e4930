"""Claim 8: DDIM(η=0) = Euler in (σ, x/s) = DPM-Solver-1, and differs from Euler in t at O(Δσ²)."""

import sympy

from sdebench.theory.claims import ddim
from sdebench.theory.claims.common import X
from sdebench.theory.kernel import T
from sdebench.theory.testing import assert_vanishes, midpoint_time
from sdebench.theory.verify import is_nonzero_somewhere


def test_pf_ode_is_dy_dsigma_equals_eps(kernel):
    assert_vanishes(ddim.pf_ode_in_sigma_residual(kernel), kernel,
                    extra_ranges={ddim.EPS_HAT: (-3.0, 3.0)})


def test_ddim_is_euler_in_sigma():
    assert sympy.simplify(ddim.ddim_equals_euler_in_sigma_residual()) == 0


def test_ddim_is_dpm_solver_1():
    assert sympy.simplify(ddim.ddim_equals_dpm_solver_1_residual()) == 0


def test_ddim_differs_from_euler_in_t_at_second_order(kernel):
    coefficients = ddim.ddim_minus_euler_in_t(kernel)
    assert_vanishes(coefficients[0], kernel)
    assert_vanishes(coefficients[1], kernel)
    if kernel.name == "generic":
        assert sympy.simplify(coefficients[2]) != 0
    elif kernel.name in ("edm", "rf"):
        # s and sσ linear in t (EDM: 1, t; rf: 1 − t, t): Euler in σ is Euler in t
        # (theory/tests/test_flow.py proves the rf step equality exactly)
        assert_vanishes(coefficients[2], kernel)
    else:
        point = {T: midpoint_time(kernel), X: 0.7, ddim.EPS_HAT: 0.3}
        assert is_nonzero_somewhere(coefficients[2], point)
