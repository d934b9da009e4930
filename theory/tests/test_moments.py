"""Claim 1: kernel ↔ SDE through the Itô moment equations (notes 002 §3, 004 §1)."""

import sympy

from sdebench.theory.claims import moments
from sdebench.theory.kernel import T
from sdebench.theory.testing import assert_vanishes, midpoint_time
from sdebench.theory.verify import is_nonzero_somewhere


def test_kernel_mean_solves_mean_ode(kernel):
    assert_vanishes(moments.kernel_mean_ode_residual(kernel), kernel)


def test_kernel_variance_solves_variance_ode(kernel):
    assert_vanishes(moments.kernel_variance_ode_residual(kernel), kernel)


def test_alpha_beta_drift_matches_note_004(kernel):
    assert_vanishes(moments.alpha_beta_drift_residual(kernel), kernel)


def test_alpha_beta_diffusion_matches_note_004(kernel):
    assert_vanishes(moments.alpha_beta_diffusion_residual(kernel), kernel)


def test_linear_sde_mean_ode(kernel):
    for entry in moments.linear_sde_mean_residual(kernel):
        assert_vanishes(entry, kernel)


def test_linear_sde_covariance_ode_full_initial_covariance(kernel):
    for entry in moments.linear_sde_covariance_residual(kernel):
        assert_vanishes(entry, kernel)


def test_variance_ode_detects_a_wrong_diffusion(kernel):
    """Negative control: doubling g² leaves a residual of −g² ≠ 0."""
    wrong = moments.kernel_variance_ode_residual(kernel) - kernel.g2
    if kernel.name == "generic":
        assert sympy.simplify(wrong) != 0
    else:  # simplify takes minutes on vp0snr; at a point g² > 0 (σ̇ > 0, checked by Schedule)
        assert is_nonzero_somewhere(wrong, {T: midpoint_time(kernel)})
