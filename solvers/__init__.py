"""Samplers of the reverse SDE and the probability-flow ODE: one sampling loop
(:func:`sample`), small solver objects that declare their orders, time grids, noise sources and
model adapters."""

from sdebench.solvers.catalogue import SAMPLERS, get_solver, register_sampler
from sdebench.solvers.context import FINITE_CHECKS, Denoiser, NonFiniteError, StepContext
from sdebench.solvers.grids import GRIDS, make_grid, register_grid
from sdebench.solvers.loop import SampleResult, sample
from sdebench.solvers.noise import BrownianTree, GaussianIncrements, PerSampleIncrements
from sdebench.solvers.solver import Solver

__all__ = [
    "FINITE_CHECKS",
    "GRIDS",
    "SAMPLERS",
    "BrownianTree",
    "Denoiser",
    "GaussianIncrements",
    "NonFiniteError",
    "PerSampleIncrements",
    "SampleResult",
    "Solver",
    "StepContext",
    "get_solver",
    "make_grid",
    "register_grid",
    "register_sampler",
    "sample",
]
