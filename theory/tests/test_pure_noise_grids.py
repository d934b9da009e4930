"""The order of λ-step methods from pure noise (theory/claims/pure_noise_grids.py): proven for
rf, rf with shift 3 and vp0snr, and for the grids sdebench and the peers use (a = 1: uniform in
t, shifted; a = 1/2: ``graded``)."""

import pytest
import sympy

from sdebench.theory.claims import pure_noise_grids as claims
from sdebench.theory.claims.common import V0
from sdebench.theory.testing import kernel_named

PURE_NOISE_SCHEDULES = ["rf", "rf:shift=3", "vp0snr"]
HALF = sympy.Rational(1, 2)


def _finite_and_positive(value: sympy.Expr) -> bool:
    return bool(value.is_finite) and bool(sympy.N(value) > 0)


@pytest.mark.parametrize("name", PURE_NOISE_SCHEDULES)
def test_the_scale_vanishes_like_exp_lambda(name):
    """Fact 1: s e^{−λ} → a finite positive constant at pure noise."""
    assert _finite_and_positive(claims.scale_over_exp_lambda_at_pure_noise(kernel_named(name)))


@pytest.mark.parametrize("name", PURE_NOISE_SCHEDULES)
def test_a_grid_uniform_in_t_is_uniform_in_exp_lambda_near_the_noise(name):
    """Fact 4: e^{λ}/(1 − t) → a finite positive constant, so uniform in t is a = 1 (a shift
    only changes the constant: 1/shift on rf)."""
    limit = claims.exp_lambda_over_remaining_time_at_pure_noise(kernel_named(name))
    assert _finite_and_positive(limit)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_the_denoisers_lambda_derivatives_vanish_like_exp_lambda(order):
    """Fact 2: e^{−λ} ∂ᵏ_λ x̂₀ → v₀ z along the flow of Gaussian data, for every k."""
    limit = claims.denoiser_derivative_over_exp_lambda_at_pure_noise(order)
    assert sympy.simplify(limit - V0 * claims.Z) == 0


@pytest.mark.parametrize("order, a", [(1, 1), (2, 1), (3, 1), (2, HALF), (3, HALF), (4, HALF)])
def test_the_noise_end_errors_sum_to_the_claimed_rate(order, a):
    """Σ_k N^{−2/a} k^{2/a − p − 1} over the rate N^{−min(p, 2/a)} (× log N at p = 2/a) has a finite
    positive limit: uniform in t (a = 1) gives 2M N^{−2} log N and third order N^{−2}; the graded
    grid (a = 1/2) keeps orders 2 and 3 and gives order 4 its log."""
    ratio = claims.noise_end_error_sum(order, a) / claims.error_sum_rate(order, a)
    assert _finite_and_positive(sympy.limit(ratio, claims.N, sympy.oo))


def test_the_claimed_rate_is_slower_than_the_order_exactly_where_it_says():
    """The rate is N^{−p} below p = 2/a and strictly slower at and above it."""
    n = claims.N
    assert claims.error_sum_rate(2, HALF) == n**-2
    assert claims.error_sum_rate(2, 1) == sympy.log(n) / n**2
    assert claims.error_sum_rate(3, 1) == n**-2
