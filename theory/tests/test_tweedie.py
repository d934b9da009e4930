"""Claim 6: Tweedie, noise prediction = score estimation, all conversions, DSM = ESM + const."""

import itertools

import pytest
import sympy

from sdebench.theory.claims import tweedie
from sdebench.theory.claims.common import MU, V0, X
from sdebench.theory.kernel import T
from sdebench.theory.parameterisation import KINDS
from sdebench.theory.testing import assert_vanishes, kernel_named, midpoint_time
from sdebench.theory.verify import is_nonzero_somewhere

DATA_NAMES = ["gaussian", "mixture"]


@pytest.mark.parametrize("data", DATA_NAMES)
def test_tweedie_denoiser(kernel, data):
    assert_vanishes(tweedie.tweedie_denoiser_residual(kernel, data), kernel)


@pytest.mark.parametrize("data", DATA_NAMES)
def test_noise_prediction_is_scaled_score(kernel, data):
    assert_vanishes(tweedie.noise_prediction_residual(kernel, data), kernel)


@pytest.mark.parametrize("pair", list(itertools.permutations(KINDS, 2)), ids="->".join)
def test_parameterisation_conversion(kernel, pair):
    assert_vanishes(tweedie.conversion_residuals(kernel, "gaussian")[pair], kernel)


@pytest.mark.parametrize("name", ["vp", "vp_cosine"])
def test_note002_x0_recovery_sign_is_wrong(name):
    """Negative control (ERRATA.md, note 002 §8)."""
    kernel = kernel_named(name)
    residual = tweedie.note002_x0_recovery_residual(kernel)
    assert is_nonzero_somewhere(residual, {T: 0.5, X: 0.7, MU: 0.3, V0: 0.5})


def test_dsm_equals_esm_plus_model_independent_constant(kernel):
    difference, (a, b) = tweedie.dsm_minus_esm(kernel)
    assert_vanishes(sympy.diff(difference, a), kernel)
    assert_vanishes(sympy.diff(difference, b), kernel)
    if kernel.name != "generic":
        point = {T: midpoint_time(kernel), MU: 0.3, V0: 0.5}
        # the constant is ≈ v₀/(2 s²σ⁴) at large σ, tiny but far above 50-digit round-off
        assert is_nonzero_somewhere(difference.subs({a: 0, b: 0}), point, threshold=1e-30)
