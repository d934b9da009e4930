"""Denoising score matching: the loss of one batch, for any prediction target and weighting.

x_t = s(t)(x₀ + σ(t) ε) with t ~ U(t_min, t_max), ε ~ N(0, I) (Vincent 2011; Song et al. 2021,
eq. 7). The network's output (``prediction`` ∈ eps, x0, v, score) is converted to x̂₀ by the
schedule's own conversions (:mod:`sdebench.theory.parameterisation`), and every weighting is a
weight on ‖x̂₀ − x₀‖², the same minimiser E[x₀ | x_t] for all of them:

* ``simple``: ‖ε̂ − ε‖² = ‖x̂₀ − x₀‖²/σ² — Ho et al. 2020's L_simple, which is also the score loss
  with λ = s²σ² (the kernel variance, note 001's "λ = σ_t²"): s²σ² ‖ŝ − ∇log p‖² with
  ŝ − ∇ = (x̂₀ − x₀)/(sσ²);
* ``likelihood``: g² ‖ŝ − ∇log p(x_t|x₀)‖² = g²/(s²σ⁴) ‖x̂₀ − x₀‖² (Song et al. 2021b; the
  weighting of note 001's KL bound);
* ``edm``: (σ² + σ_data²)/(σ σ_data)² ‖x̂₀ − x₀‖² (Karras et al. 2022, eq. 8 and Table 1);
* ``flow``: ‖v̂ − (ε − x₀)‖² = ((1 + σ)/σ)² ‖x̂₀ − x₀‖², conditional flow matching (Lipman et
  al. 2023, eq. 23; Liu et al. 2023) — from x₀ = (x − sσ v)/(s + sσ); on ``rf`` (1 + σ)/σ = 1/τ.

Coefficients are written in s and the kernel's std sσ, finite at a pure-noise end (rf, vp0snr).

The loss is the batch mean of the per-sample weighted squared error summed over dimensions.
"""

from __future__ import annotations

import torch

from sdebench.theory.schedule import Schedule

WEIGHTINGS = ("simple", "likelihood", "edm", "flow")


def x0_weight(weighting: str, schedule: Schedule, t: torch.Tensor,
              data_std: float = 1.0) -> torch.Tensor:
    """w(t) with loss = w(t) ‖x̂₀ − x₀‖² (module docstring)."""
    numeric = schedule.numeric
    s, std = numeric.s(t), numeric.kernel_std(t)
    if weighting == "simple":  # 1/σ²
        return (s / std) ** 2
    if weighting == "likelihood":  # g²/(s²σ⁴)
        return numeric.g2(t) * s**2 / std**4
    if weighting == "edm":  # (σ² + σ_data²)/(σ σ_data)²
        return (std**2 + (s * data_std) ** 2) / (std * data_std) ** 2
    if weighting == "flow":  # ((1 + σ)/σ)²
        return ((s + std) / std) ** 2
    raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")


def dsm_loss(network, x0: torch.Tensor, schedule: Schedule, prediction: str, weighting: str,
             generator: torch.Generator, data_std: float = 1.0) -> torch.Tensor:
    """The DSM loss of a batch of data ``x0`` (batch, …), with times and noise from
    ``generator``."""
    numeric = schedule.numeric
    batch = x0.shape[0]
    u = torch.rand(batch, generator=generator, dtype=x0.dtype, device=x0.device)
    t = numeric.t_min + (numeric.t_max - numeric.t_min) * u
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    shape = (batch,) + (1,) * (x0.ndim - 1)
    s, std = numeric.s(t).reshape(shape), numeric.kernel_std(t).reshape(shape)
    x_t = s * x0 + std * noise
    fx, fp = numeric.conversion_coefficients(prediction, "x0")
    x0_hat = fx(t).reshape(shape) * x_t + fp(t).reshape(shape) * network(x_t, t)
    squared = (x0_hat - x0).pow(2).flatten(1).sum(1)
    return (x0_weight(weighting, schedule, t, data_std) * squared).mean()
