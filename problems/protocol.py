"""What a problem is: data whose truth is known, on a schedule (DiffEqDevTools' problems with an
analytic solution). Studies choose metrics by what a problem can answer, never by its type.

Every problem has

* ``schedule`` (a :class:`~sdebench.theory.schedule.Schedule`), ``dim``, ``device``, ``dtype``;
* ``denoiser(x, t)``: x̂₀ = E[x₀ | x_t = x] for a batch x of shape (batch, dim) — exact for the
  built-in problems, the network's estimate for a model problem;
* ``sample_marginal(t, n, generator)``: n exact samples of p_t (a model problem: its start law,
  at t_max only);
* ``to(dtype=None, device=None)``: the same problem in another precision or on another device;
* ``capabilities``: a frozenset of what else it answers —

  ``"exact_law"``    the exact law of a sampler's output: ``marginal_law(t)`` (a state object for
                     :mod:`sdebench.state` whose arithmetic is exact), ``w2(law, t)``, ``kl(law, t)``;
  ``"log_density"``  ``log_density(x, t)`` = log p_t(x);
  ``"samples"``      exact samples of p_t at any t (every built-in problem; a model problem,
                     :mod:`sdebench.problems.model`, draws only its start law at t_max);
  ``"paths"``        tensor states, so samplers can be compared pathwise on shared Brownian paths.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

EXACT_LAW = "exact_law"
LOG_DENSITY = "log_density"
SAMPLES = "samples"
PATHS = "paths"
CAPABILITIES = (EXACT_LAW, LOG_DENSITY, SAMPLES, PATHS)

_REQUIRED = ("schedule", "dim", "device", "dtype", "denoiser", "sample_marginal", "to",
             "capabilities")
_BY_CAPABILITY = {EXACT_LAW: ("marginal_law", "w2", "kl"), LOG_DENSITY: ("log_density",)}


@runtime_checkable
class Problem(Protocol):
    schedule: object
    dim: int
    capabilities: frozenset

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    def denoiser(self, x, t): ...

    def sample_marginal(self, t, n: int, generator: torch.Generator | None = None): ...

    def to(self, dtype=None, device=None) -> Problem: ...


def check_problem(problem, name: str = "problem") -> None:
    """Raise TypeError naming what a (user) problem lacks: a member of the protocol, or a method
    that one of its declared capabilities needs."""
    missing = [member for member in _REQUIRED if not hasattr(problem, member)]
    if missing:
        raise TypeError(f"{name} ({type(problem).__name__}) lacks {missing} of the Problem protocol "
                        "(sdebench.problems.protocol)")
    unknown = set(problem.capabilities) - set(CAPABILITIES)
    if unknown:
        raise TypeError(f"{name} declares unknown capabilities {sorted(unknown)}; known: "
                        f"{list(CAPABILITIES)}")
    for capability, members in _BY_CAPABILITY.items():
        lacking = [m for m in members if capability in problem.capabilities and not hasattr(problem, m)]
        if lacking:
            raise TypeError(f"{name} declares {capability!r} but lacks {lacking}")
