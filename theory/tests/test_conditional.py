"""Claim 9: conditional score = score + time-t likelihood score; the plug-in likelihood is not."""

from sdebench.theory.catalogue import vp_linear
from sdebench.theory.claims import conditional as cond
from sdebench.theory.claims.common import MU, V0, X
from sdebench.theory.kernel import T
from sdebench.theory.testing import assert_vanishes, midpoint_time
from sdebench.theory.verify import is_nonzero_somewhere

OBSERVATION_RANGES = {cond.Y: (-2.0, 2.0), cond.GAIN: (0.5, 2.0), cond.NOISE_VAR: (0.1, 1.0)}


def test_conditional_score_decomposition(kernel):
    assert_vanishes(
        cond.conditional_score_residual(kernel), kernel, extra_ranges=OBSERVATION_RANGES
    )


def test_plug_in_likelihood_is_not_the_time_t_likelihood(kernel):
    point = {T: midpoint_time(kernel), X: 0.7, MU: 0.3, V0: 0.5,
             cond.Y: 1.1, cond.GAIN: 1.5, cond.NOISE_VAR: 0.2}
    concrete = vp_linear() if kernel.name == "generic" else kernel
    assert is_nonzero_somewhere(cond.plug_in_likelihood_residual(concrete), point)
