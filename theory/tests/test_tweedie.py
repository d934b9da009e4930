"""Claim 6: Tweedie, noise prediction = score estimation, all conversions, DSM = ESM + const."""

import itertools

import pytest
import sympy

from sdebench.theory.claims import tweedie
from sdebench.theory.claims.common import MU, V0, X
from sdebench.theory.kernel import T
from sdebench.theory.parameterisation import KINDS, prediction_target
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


def test_dsm_minus_esm_is_its_derived_constant(kernel):
    """The constant is ½E‖∇log p(x_t|x₀)‖² − ½E‖∇log p_t‖² = ½/(s²σ²) − ½/(s²(v₀ + σ²))
    = v₀/(2 s² σ² (v₀ + σ²)) per dimension (d λ/(2s²σ²(λ+σ²)) for d dimensions of variance λ)."""
    difference, (a, b) = tweedie.dsm_minus_esm(kernel)
    s, sigma = kernel.s, kernel.sigma
    assert_vanishes(difference - V0 / (2 * s**2 * sigma**2 * (V0 + sigma**2)), kernel,
                    extra_ranges={a: (-2.0, 2.0), b: (-2.0, 2.0)})


def test_v_prediction_is_minus_the_edm_training_target():
    """EDM trains F on F_target = (x₀ − c_skip (x₀ + n))/c_out with n = σε, c_skip = 1/(σ² + 1),
    c_out = σ/√(σ² + 1) for σ_data = 1 and s = 1 (Karras et al. 2022, eq. 8, Table 1); the v of
    Salimans & Ho is −F_target (theory/parameterisation.py said +F before)."""
    sigma = sympy.Symbol("sigma", positive=True)
    x0, eps = sympy.symbols("x_0 epsilon", real=True)
    c_skip, c_out = 1 / (sigma**2 + 1), sigma / sympy.sqrt(sigma**2 + 1)
    f_target = (x0 - c_skip * (x0 + sigma * eps)) / c_out
    v = prediction_target("v", sympy.Integer(1), sigma).subs(
        {sympy.Symbol("x_0", real=True): x0, sympy.Symbol("epsilon", real=True): eps})
    assert sympy.simplify(v + f_target) == 0
    assert sympy.simplify(v - f_target) != 0
