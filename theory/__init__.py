"""Symbolic layer of sdebench: schedules, derived SDE coefficients and proofs of the notes' claims.

Everything numeric in the suite (solvers, problems, studies) is lambdified from the SymPy
expressions defined here, so no schedule formula is typed twice.
"""

from sdebench.theory.catalogue import (
    SCHEDULES,
    edm,
    get_schedule,
    register_schedule,
    subvp,
    ve_geometric,
    vp_cosine,
    vp_linear,
)
from sdebench.theory.kernel import Kernel, T, generic_kernel
from sdebench.theory.schedule import Schedule, ScheduleError

__all__ = [
    "SCHEDULES",
    "Kernel",
    "Schedule",
    "ScheduleError",
    "T",
    "edm",
    "generic_kernel",
    "get_schedule",
    "register_schedule",
    "subvp",
    "ve_geometric",
    "vp_cosine",
    "vp_linear",
]
