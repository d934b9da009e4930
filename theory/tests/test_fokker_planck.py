"""Claims 2–5: forward FP, reverse SDE, PF-ODE and the h(t)-family, for Gaussian and mixture data."""

import pytest

from sdebench.theory.claims import fokker_planck as fp
from sdebench.theory.claims.common import DATA, MU, MU2, V0, V2, WEIGHT, X, concrete_h2, score
from sdebench.theory.kernel import T
from sdebench.theory.testing import assert_vanishes, kernel_named
from sdebench.theory.verify import is_nonzero_somewhere

DATA_NAMES = list(DATA)


@pytest.mark.parametrize("data", DATA_NAMES)
def test_forward_fokker_planck(kernel, data):
    assert_vanishes(fp.forward_fokker_planck_residual(kernel, DATA[data](kernel)), kernel)


@pytest.mark.parametrize("data", DATA_NAMES)
def test_reverse_sde_solves_time_reversed_fokker_planck(kernel, data):
    assert_vanishes(fp.reverse_sde_fokker_planck_residual(kernel, DATA[data](kernel)), kernel)


@pytest.mark.parametrize("data", DATA_NAMES)
def test_probability_flow_continuity_equation(kernel, data):
    assert_vanishes(fp.probability_flow_continuity_residual(kernel, DATA[data](kernel)), kernel)


@pytest.mark.parametrize("data", DATA_NAMES)
def test_sde_family_shares_marginals_for_any_h(kernel, data):
    p = DATA[data](kernel)
    assert_vanishes(fp.sde_family_residual(kernel, p, concrete_h2(kernel)), kernel)


@pytest.mark.parametrize("data", DATA_NAMES)
def test_reverse_sde_family_shares_marginals_for_any_h(kernel, data):
    p = DATA[data](kernel)
    assert_vanishes(fp.reverse_sde_family_residual(kernel, p, concrete_h2(kernel)), kernel)


@pytest.mark.parametrize("name", ["vp", "ve", "edm"])
def test_note003_family_diffusion_is_wrong(name):
    """Negative control (ERRATA.md, note 003): the diffusion ½h²∇log p dw does not keep p_t."""
    kernel = kernel_named(name)
    residual = fp.note003_family_residual(kernel, DATA["gaussian"](kernel), concrete_h2(kernel))
    t_mid = (kernel.t_min + kernel.t_max) / 2
    point = {T: t_mid, X: 0.7, MU: 0.3, V0: 0.5, MU2: 0, V2: 1, WEIGHT: 0.5}
    assert is_nonzero_somewhere(residual, point)


def test_reverse_drift_with_wrong_sign_fails():
    """Negative control: the reverse drift −(f x + g²∇log p) does not solve the reversed FP."""
    kernel = kernel_named("vp")
    p = DATA["gaussian"](kernel)
    drift = -(kernel.f * X + kernel.g2 * score(p))
    flipped = fp._fokker_planck(p, drift, kernel.g2, reverse=True)
    point = {T: 0.5, X: 0.7, MU: 0.3, V0: 0.5}
    assert is_nonzero_somewhere(flipped, point)
