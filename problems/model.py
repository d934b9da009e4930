"""A trained network as a problem: no exact answer, so studies measure against a reference solve.

A :class:`ModelProblem` wraps the denoiser an adapter (:mod:`sdebench.problems.adapters`) builds
from the user's network on the schedule the samplers integrate. It answers ``"paths"`` only:
states are tensors of shape (batch, *shape), so samplers are compared pathwise from shared start
points (reference-based convergence, :mod:`sdebench.studies.reference`) and on shared Brownian
paths.
"""

from __future__ import annotations

import math

import torch

from sdebench.problems.adapters import ModelAdapter
from sdebench.problems.protocol import EXACT_LAW, PATHS
from sdebench.theory.schedule import Schedule


def _move(network, dtype, device) -> None:
    """Move an ``nn.Module`` network in place (modules move in place, so every problem built on
    one network shares its dtype and device); other callables are the user's to place."""
    if isinstance(network, torch.nn.Module):
        network.to(dtype=dtype, device=device)


class ModelProblem:
    """A network's denoiser on ``schedule`` for states of shape (batch, *shape): no exact answer
    (capabilities: ``paths``). ``sample_marginal`` draws the start law only, at t_max:
    N(0, s(T)²(1 + σ(T)²) I) — the Gaussian with the marginal variance of unit-variance data,
    diffusers' N(0, I) for VP schedules and ≈ k-diffusion's σ_max·N(0, I) for EDM.

    The network is moved to the problem's dtype and device (:func:`_move`)."""

    capabilities = frozenset({PATHS})

    def __init__(self, adapter: ModelAdapter, schedule: Schedule, shape: tuple[int, ...], *,
                 dtype=torch.float64, device="cpu", compile: bool = False):
        shape = tuple(int(n) for n in shape)
        if not shape or any(n < 1 for n in shape):
            raise ValueError(f"shape must be positive integers, got {shape!r}")
        self.adapter, self.schedule, self.shape, self.compile = adapter, schedule, shape, compile
        self.dim = math.prod(shape)
        self._dtype, self._device = dtype, torch.device(device)
        _move(adapter.network, dtype, self._device)
        self.denoiser = adapter.denoiser_for(schedule, compile=compile)

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return self._device

    def sample_marginal(self, t, n: int, generator: torch.Generator | None = None):
        numeric = self.schedule.numeric
        if abs(float(t) - numeric.t_max) > 1e-12 * max(1.0, abs(numeric.t_max)):
            raise ValueError(f"a model problem knows p_t only at t_max = {numeric.t_max} (its "
                             f"start law), not at t = {float(t)}")
        t_max = torch.tensor(numeric.t_max, dtype=torch.float64)
        s, sigma = float(numeric.s(t_max)), float(numeric.sigma(t_max))
        noise = torch.randn((n, *self.shape), generator=generator, dtype=self.dtype,
                            device=self.device)
        return noise * (s * math.sqrt(1 + sigma**2))

    def to(self, dtype=None, device=None) -> ModelProblem:
        dtype = dtype or self.dtype
        device = torch.device(device) if device is not None else self.device
        return ModelProblem(self.adapter, self.schedule, self.shape, dtype=dtype, device=device,
                            compile=self.compile)


class LearnedScoreProblem:
    """A network's denoiser on a problem whose truth is known (a learned score of its data):
    samplers run on the network, metrics measure against the problem's exact samples and
    density. It answers what the problem answers except ``exact_law`` (a learned score's output
    law is not the exact Gaussian propagation). A network on samples of another ``shape`` with
    as many entries (an image-shaped network on the problem's vectors) sees each state reshaped
    to (batch, *shape)."""

    def __init__(self, truth, adapter: ModelAdapter, *, compile: bool = False,
                 shape: tuple[int, ...] | None = None):
        self.truth, self.adapter, self.compile = truth, adapter, compile
        self.schedule, self.dim = truth.schedule, truth.dim
        self.shape = tuple(shape) if shape is not None else (truth.dim,)
        if math.prod(self.shape) != truth.dim:
            raise ValueError(f"a network on samples of shape {self.shape} cannot serve a problem "
                             f"of dimension {truth.dim}")
        self.capabilities = frozenset(truth.capabilities) - {EXACT_LAW}
        _move(adapter.network, truth.dtype, truth.device)
        denoiser = adapter.denoiser_for(truth.schedule, compile=compile)
        self.denoiser = denoiser if self.shape == (truth.dim,) else (
            lambda x, t: denoiser(x.reshape(x.shape[0], *self.shape), t).reshape(x.shape))
        if hasattr(truth, "log_density"):
            self.log_density = truth.log_density

    @property
    def dtype(self) -> torch.dtype:
        return self.truth.dtype

    @property
    def device(self) -> torch.device:
        return self.truth.device

    def sample_marginal(self, t, n: int, generator: torch.Generator | None = None):
        return self.truth.sample_marginal(t, n, generator)

    def to(self, dtype=None, device=None) -> LearnedScoreProblem:
        return LearnedScoreProblem(self.truth.to(dtype=dtype, device=device), self.adapter,
                                   compile=self.compile, shape=self.shape)
