"""Solvers by name: the catalogue the CLI and the studies draw from."""

from __future__ import annotations

from collections.abc import Callable

from sdebench.solvers.base import Solver
from sdebench.solvers.exponential import (
    DDIM,
    DPMSolver2,
    DPMSolver3,
    DPMSolverPP2M,
    DPMSolverPP2MSDE,
    UniPCBh2,
)
from sdebench.solvers.ode import EULER, HEUN, RK4, DormandPrince45, ExplicitRungeKutta
from sdebench.solvers.sde import (
    AnnealedLangevin,
    EDMStochastic,
    EulerMaruyama,
    PredictorCorrector,
    ReverseDiffusion,
)

SOLVERS: dict[str, Callable[[], Solver]] = {
    # probability-flow ODE
    "euler": lambda: ExplicitRungeKutta("euler", EULER, order=1),
    "heun": lambda: ExplicitRungeKutta("heun", HEUN, order=2, euler_at_zero_sigma=True),
    "rk4": lambda: ExplicitRungeKutta("rk4", RK4, order=4),
    "rk45": DormandPrince45,
    "ddim": DDIM,
    "dpm_solver_2": DPMSolver2,
    "dpm_solver_3": DPMSolver3,
    "dpmpp_2m": DPMSolverPP2M,
    "unipc_bh2": UniPCBh2,
    # reverse SDE
    "euler_maruyama": EulerMaruyama,
    "reverse_diffusion": ReverseDiffusion,
    "ancestral": lambda: DDIM(eta=1.0, name="ancestral"),
    "ddim_eta0.5": lambda: DDIM(eta=0.5),
    "pc": PredictorCorrector,
    "annealed_langevin": AnnealedLangevin,
    "edm_stochastic": EDMStochastic,
    "dpmpp_2m_sde": DPMSolverPP2MSDE,
}


def get_solver(name: str) -> Solver:
    """A fresh solver called ``name`` (one of :data:`SOLVERS`) with its default parameters."""
    if name not in SOLVERS:
        raise ValueError(f"unknown sampler {name!r}; expected one of {sorted(SOLVERS)}")
    return SOLVERS[name]()
