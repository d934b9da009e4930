"""The sampler catalogue: name → solver class or factory (called with the spec's parameters).

Extend it with ``@register_sampler("name")`` on a :class:`~sdebench.solvers.solver.Solver`
subclass (or a function returning a solver); the CLI and studies then accept the name, with
parameters (``--samplers ddim:eta=0.3``), and so does ``module:attribute``.
"""

from __future__ import annotations

from sdebench.registry import Registry, Spec, parse_spec
from sdebench.solvers.exponential import (
    DDIM,
    DPMSolver2,
    DPMSolver3,
    DPMSolverPP2M,
    DPMSolverPP2MSDE,
    UniPCBh2,
)
from sdebench.solvers.ode import DormandPrince45, Euler, Heun, RungeKutta4
from sdebench.solvers.sde import (
    AnnealedLangevin,
    EDMStochastic,
    EulerMaruyama,
    PredictorCorrector,
    ReverseDiffusion,
)
from sdebench.solvers.solver import check_declarations

SAMPLERS = Registry("sampler")
register_sampler = SAMPLERS.register


def ancestral() -> DDIM:
    """DDPM ancestral sampling = DDIM with η = 1 (Song, Meng & Ermon 2021, §4.1)."""
    return DDIM(eta=1.0)


def ddim_eta_half() -> DDIM:
    """DDIM with η = 0.5, halfway between the PF-ODE and ancestral sampling."""
    return DDIM(eta=0.5)


_BUILTIN = {
    # probability-flow ODE
    "euler": Euler,
    "heun": Heun,
    "rk4": RungeKutta4,
    "rk45": DormandPrince45,
    "ddim": DDIM,
    "dpm_solver_2": DPMSolver2,
    "dpm_solver_3": DPMSolver3,
    "dpmpp_2m": DPMSolverPP2M,
    "unipc_bh2": UniPCBh2,
    # reverse SDE
    "euler_maruyama": EulerMaruyama,
    "reverse_diffusion": ReverseDiffusion,
    "ancestral": ancestral,
    "ddim_eta0.5": ddim_eta_half,
    "pc": PredictorCorrector,
    "annealed_langevin": AnnealedLangevin,
    "edm_stochastic": EDMStochastic,
    "dpmpp_2m_sde": DPMSolverPP2MSDE,
}
for _name, _factory in _BUILTIN.items():
    register_sampler(_name, _factory)

BUILTIN_SAMPLERS = tuple(_BUILTIN)
"""sdebench's own samplers (plugins, such as the peers of :mod:`sdebench.peers`, add others)."""


def sampler_groups() -> dict[str, list[str]]:
    """The names a sampler list may use for many samplers: ``all``, every registered sampler but
    the peer libraries' (sdebench's and plugins' own; no peer library is needed), and
    ``peers``, those of the peer libraries (a factory with a ``peer_library`` attribute)."""
    names = SAMPLERS.names()
    peers = [n for n in names if getattr(SAMPLERS.factory(n), "peer_library", "")]
    return {"all": [n for n in names if n not in peers], "peers": peers}


def get_solver(spec: str | Spec):
    """A fresh solver from a spec: a catalogue name with optional parameters (``"heun"``,
    ``"ddim:eta=0.3"``) or ``module:attribute`` of a solver class or factory; its declarations
    are checked."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    solver = SAMPLERS.create(spec)
    check_declarations(solver)
    return solver
