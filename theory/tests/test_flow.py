"""Flow matching and zero terminal SNR (theory/claims/flow.py): proven for every kernel where the
claim is general, and for rf, rf with shift 3 and vp0snr where it is about them."""

import pytest
import sympy

from sdebench.theory.claims import flow
from sdebench.theory.claims.common import V0, X
from sdebench.theory.kernel import T
from sdebench.theory.testing import assert_vanishes, kernel_named, midpoint_time
from sdebench.theory.verify import is_nonzero_somewhere

FLOW_SCHEDULES = ["rf", "rf:shift=3", "vp0snr"]
PREDICTIONS = {flow.X0_HAT: (-3.0, 3.0), flow.X0: (-3.0, 3.0), flow.EPS: (-3.0, 3.0)}


@pytest.fixture(params=["generic", *FLOW_SCHEDULES])
def flow_kernel(request):
    return kernel_named(request.param)


def test_pf_drift_is_the_mean_path_velocity(flow_kernel):
    assert_vanishes(flow.pf_drift_is_mean_velocity_residual(flow_kernel), flow_kernel,
                    extra_ranges=PREDICTIONS)


def test_pf_coefficients_in_s_and_std_equal_the_paper_form(flow_kernel):
    for residual in flow.pf_coefficients_residuals(flow_kernel):
        assert_vanishes(residual, flow_kernel)


def test_cfm_is_dsm_weighted_by_g4_over_4(flow_kernel):
    assert_vanishes(flow.cfm_minus_weighted_dsm(flow_kernel), flow_kernel, extra_ranges=PREDICTIONS)


def test_cfm_constant_is_weighted_posterior_variance(flow_kernel):
    assert_vanishes(flow.cfm_constant_residual(flow_kernel), flow_kernel)


def test_rf_velocity_is_epsilon_minus_x0():
    kernel = kernel_named("rf")
    assert sympy.simplify(flow.rf_velocity_is_flow_prediction_residual(kernel)) == 0


def test_rf_velocity_of_a_shifted_schedule_is_not_epsilon_minus_x0_in_t():
    """Negative control: with a shift the velocity in t is τ'(t)(ε − x₀), not ε − x₀."""
    kernel = kernel_named("rf:shift=3")
    residual = flow.rf_velocity_is_flow_prediction_residual(kernel)
    assert is_nonzero_somewhere(residual, {T: 0.5, flow.X0: 0.3, flow.EPS: -0.7})


@pytest.mark.parametrize("name", ["rf", "rf:shift=3"])
def test_euler_in_tau_is_ddim(name):
    """diffusers' FlowMatchEuler step equals DDIM on the same sigmas, for any shift."""
    kernel = kernel_named(name)
    residual = flow.euler_in_tau_minus_ddim(kernel, kernel.kernel_std)
    assert sympy.simplify(residual) == 0


def test_euler_in_t_is_ddim_without_shift_only():
    assert sympy.simplify(flow.euler_in_t_minus_ddim(kernel_named("rf"))) == 0
    shifted = flow.euler_in_t_minus_ddim(kernel_named("rf:shift=3"))
    assert is_nonzero_somewhere(shifted, {T: 0.5, flow.NEXT: 0.25, X: 0.7, flow.X0_HAT: 0.2})


@pytest.mark.parametrize("shift", [3, 0.5])
def test_shift_is_a_reparameterisation_of_time(shift):
    shifted, unshifted = kernel_named(f"rf:shift={shift}"), kernel_named("rf")
    exact_shift = sympy.Rational(repr(shift))
    for residual in flow.shift_reparameterisation_residuals(shifted, unshifted, exact_shift):
        assert sympy.simplify(residual) == 0


@pytest.mark.parametrize("name", ["rf", "rf:shift=3", "rf:image_seq_len=4096"])
def test_rf_family_kernel_is_a_function_of_snr(name):
    assert sympy.simplify(flow.rf_family_snr_residual(kernel_named(name))) == 0


def test_vp0snr_is_variance_preserving_and_pure_noise_at_one():
    kernel = kernel_named("vp0snr")
    assert_vanishes(flow.variance_preserving_residual(kernel), kernel)
    assert kernel.pure_noise_end and kernel.s.subs(T, 1) == 0
    assert sympy.simplify(kernel.kernel_std.subs(T, 1)) == 1


def test_cfm_constant_fails_with_the_wrong_weight():
    """Negative control: weighting Var[x₀|x_t] by g⁴/4 (the DSM weight) instead of (sσ̇/σ)²."""
    kernel = kernel_named("rf")
    wrong = flow.cfm_constant_residual(kernel) + (
        (kernel.s * kernel.dsigma / kernel.sigma) ** 2 - kernel.g2**2 / 4) * V0 * kernel.sigma**2 / (
        V0 + kernel.sigma**2)
    assert is_nonzero_somewhere(wrong, {T: midpoint_time(kernel), V0: 0.5})
