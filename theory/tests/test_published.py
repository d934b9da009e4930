"""Claim 10: derived coefficients equal the published closed forms (Song et al., EDM, Nichol)."""

import pytest

from sdebench.theory import SCHEDULES
from sdebench.theory.claims.published import published_residuals
from sdebench.theory.testing import assert_vanishes, kernel_named


@pytest.mark.parametrize("name", SCHEDULES.names())
def test_matches_published_closed_form(name):
    residuals = published_residuals(name)
    assert residuals
    for label, residual in residuals.items():
        verdict = assert_vanishes(residual, kernel_named(name), hide=None)
        assert verdict.zero, label
