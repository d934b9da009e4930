"""Helpers for proving the notes' claims for a kernel: used by ``theory/tests`` and by anyone who
adds a schedule and wants the same proofs for it.

The generic kernel (undefined s(t), σ(t)) must simplify to 0 symbolically: that is the proof for
every schedule. For catalogue schedules the residual is first cancelled symbolically and, where
that does not reach 0, evaluated with mpmath at 50 digits (stated in the verdict; see
:mod:`sdebench.theory.verify`).
"""

from __future__ import annotations

import functools

from sdebench.theory import generic_kernel, get_schedule
from sdebench.theory.claims.common import X, sampling_ranges
from sdebench.theory.verify import Verdict, prove_zero


@functools.cache
def kernel_named(name: str):
    """The generic kernel for ``"generic"``, else the catalogue schedule ``name`` (cached)."""
    return generic_kernel() if name == "generic" else get_schedule(name)


def assert_vanishes(residual, kernel, *, hide=X, extra_ranges=None) -> Verdict:
    """Assert that ``residual`` vanishes identically for ``kernel``: symbolically for the generic
    kernel, symbolically or at 50 mpmath digits for a concrete schedule."""
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
