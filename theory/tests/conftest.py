"""The ``kernel`` fixture: the generic kernel and every catalogue schedule (helpers in
:mod:`sdebench.theory.testing`)."""

from __future__ import annotations

import pytest

from sdebench.theory import SCHEDULES
from sdebench.theory.testing import kernel_named

KERNEL_NAMES = ["generic", *SCHEDULES.names(), "rf:shift=3"]


@pytest.fixture(params=KERNEL_NAMES)
def kernel(request):
    return kernel_named(request.param)
