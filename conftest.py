"""Hypothesis profiles for theory/ and tests/: ``ci`` (the default: 8 examples per property,
derandomized — the same examples every run, so CI's outcome never depends on chance) and ``nightly``
(HYPOTHESIS_PROFILE=nightly: 200 fresh examples per property; what it finds is kept in the tests
as ``@example``)."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=8, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "nightly", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
