"""Shared kernels and the zero check used by every claim test.

The generic kernel (undefined s(t), σ(t)) must simplify to 0 symbolically: that is the proof for
every schedule. For catalogue schedules the residual is first cancelled symbolically and, where
that does not reach 0, evaluated with mpmath at 50 digits (stated in the verdict; see
theory/verify.py).
"""

from __future__ import annotations

import functools

import pytest

from theory import CATALOGUE, generic_kernel, get_schedule
from theory.claims.common import X, sampling_ranges
from theory.verify import prove_zero

KERNEL_NAMES = ["generic", *CATALOGUE]


@functools.cache
def kernel_named(name: str):
    return generic_kernel() if name == "generic" else get_schedule(name)


def assert_vanishes(residual, kernel, *, hide=X, extra_ranges=None):
    generic = kernel.name == "generic"
    ranges = {**sampling_ranges(kernel), **(extra_ranges or {})}
    verdict = prove_zero(residual, ranges, hide=hide, symbolic=generic)
    assert verdict.zero, f"{kernel.name}: residual does not vanish ({verdict.method}): {verdict.detail}"
    if generic:
        assert verdict.method == "symbolic"
    return verdict


def midpoint_time(kernel) -> float:
    """A time inside the kernel's range (0.5 for the generic kernel)."""
    return float((kernel.t_min + kernel.t_max) / 2) if hasattr(kernel, "t_min") else 0.5


@pytest.fixture(params=KERNEL_NAMES)
def kernel(request):
    return kernel_named(request.param)
