"""Claim 7: the DDPM chain's ᾱ_i converges to the VP kernel s(i/N)² with error O(1/N)."""

import math

import pytest

from sdebench.theory.ddpm import DDPMChain


def test_ho_et_al_constants_at_n_1000():
    chain = DDPMChain(1000)
    assert float(chain.beta(1)) == pytest.approx(1e-4, rel=1e-12)
    assert float(chain.beta(1000)) == pytest.approx(0.02, rel=1e-12)


def test_alpha_bar_converges_at_first_order():
    """Errors at N = 250·2^k (30-digit mpmath). With e(N) = C/N + O(1/N²) the observed order
    log2(e(N)/e(2N)) is 1 + O(1/N); at N ≥ 250 the O(1/N) term is below 0.05 (bound on the
    second-order term: β̄_max²/N ≈ 0.02 relative at N = 250, plus the index shift)."""
    errors = [float(DDPMChain(n).limit_error()) for n in (250, 500, 1000, 2000)]
    orders = [math.log2(a / b) for a, b in zip(errors, errors[1:], strict=False)]
    assert all(abs(order - 1) < 0.05 for order in orders), (errors, orders)
    assert errors[-1] < errors[0]


def test_bad_step_count():
    with pytest.raises(ValueError, match="steps"):
        DDPMChain(1)
