"""diffusers' inversion schedulers, judged by their round trip x₀ → x_T → x₀ on exact answers.

An inversion scheduler (``DDIMInverseScheduler``, ``DPMSolverMultistepInverseScheduler``) runs the
probability-flow ODE from the data end to the noise end; editing pipelines (DiffEdit,
pix2pix-zero, null-text inversion) then sample back with the scheduler it inverts. A
:class:`RoundTrip` is that pair as one peer: from x₀ at t_min, N steps of the inverse scheduler
up to t_max, then N steps of the forward one back to t_min, on the same nodes of the training
table, each in diffusers' own loop with the exact network (:mod:`sdebench.peers.diffusers`).

**The exact inversion error.** Every step is affine and there is no noise, so on Gaussian data in
eigen-coordinates the round trip is y = b + A ⊙ x₀, coordinatewise, and probing recovers it
exactly (:func:`sdebench.peers.base.probe_law`). With x₀ = μ + Σ_k c_k ξ_k its output law is
y = m + Σ_k a_k ξ_k, and the error y − x₀ = (m − μ) + Σ_k (a_k − c_k) ξ_k has the exact mean
square E‖y − x₀‖² = ‖m − μ‖² + Σ_k ‖a_k − c_k‖² (:func:`round_trip_error`). It is also the W₂
distance between the data law and the round trip's law where every A ≥ 0 (a monotone coupling).

**Its order.** Each leg's global error is O(h^p) against its exact flow, and the exact flows are
each other's inverse with bounded Lipschitz constants, so the round trip's error is O(h^p) for
legs of order p: 1 for DDIM (its inverse also calls the network at the target timestep, an O(h)
shift of the network's time), 2 for DPM-Solver++(2M).
"""

from __future__ import annotations

import math

import torch

from sdebench.peers.base import PeerSampler
from sdebench.peers.diffusers import INVERSE_SCHEDULERS, DiffusersSampler
from sdebench.problems.law import GaussianLaw
from sdebench.registry import SpecError

FORWARD = {"DDIMInverseScheduler": "DDIMScheduler",
           "DPMSolverMultistepInverseScheduler": "DPMSolverMultistepScheduler"}
"""Each inversion scheduler and the scheduler whose steps it inverts."""


class RoundTrip(PeerSampler):
    """``diffusers.<Inverse>`` then its forward scheduler (:data:`FORWARD`) with the same
    options (module docstring). Its input is x₀ at ts[−1] (t_min), its output lies there too;
    ``ts`` sets the step count N of each leg."""

    library = "diffusers"
    stochastic = False
    strong_order = None
    precision = torch.float32

    def __init__(self, inverse: str, **options):
        if inverse not in FORWARD:
            raise SpecError(f"unknown diffusers inversion scheduler {inverse!r}; expected one of "
                            f"{sorted(FORWARD)}")
        self.method = inverse
        self.inverse = DiffusersSampler(inverse, **options)
        self.forward = DiffusersSampler(FORWARD[inverse], **options)
        if self.inverse.stochastic or self.forward.stochastic:
            raise SpecError(f"diffusers {inverse}: an inversion is deterministic; "
                            f"{options} makes a stochastic step")

    @property
    def order(self):
        return self.inverse.order

    @property
    def order_source(self) -> str:
        return (f"{self.inverse.order_source}: each leg's global error is O(h^p), the exact "
                "flows invert each other (sdebench.peers.inversion)")

    @property
    def nfe_per_step(self) -> float:
        return 2 * self.inverse.nfe_per_step  # a step of each leg

    @property
    def convention(self) -> str:
        return INVERSE_SCHEDULERS[self.method].convention

    def parameters(self) -> dict:
        return {**self.inverse.parameters(), "forward": FORWARD[self.method]}

    def run(self, model, schedule, x, ts, noise, seed: int) -> torch.Tensor:
        """x₀ at ts[−1] → the inverse scheduler up to ts[0] → the forward one back to ts[−1]."""
        noisy = self.inverse.run(model, schedule, x, ts.flip(0), None, seed)
        return self.forward.run(model, schedule, noisy, ts, None, seed)


def round_trip_error(data: GaussianLaw, output: GaussianLaw) -> float:
    """√E‖y − x₀‖² for the output law of a deterministic affine map of ``data`` whose coefficient
    rows follow the input's sources (:func:`sdebench.peers.base.probe_law` orders them so):
    √(‖m − μ‖² + Σ_k ‖a_k − c_k‖²) (module docstring)."""
    if output.coef.shape != data.coef.shape:
        raise ValueError(f"round_trip_error: {output.coef.shape[0]} output sources for "
                         f"{data.coef.shape[0]} input sources; a noisy map has no pathwise error "
                         "against its input")
    return math.sqrt(float(((output.mean - data.mean) ** 2).sum()
                           + ((output.coef - data.coef) ** 2).sum()))
