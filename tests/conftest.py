"""Hypothesis profiles: ``ci`` (default, fast) and ``nightly`` (HYPOTHESIS_PROFILE=nightly)."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "nightly", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
