"""The state algebra that samplers use, and the noise-source protocol.

A sampler's state ``x`` is a torch tensor of shape (batch, …) **or any object with the same
arithmetic**, such as :class:`sdebench.problems.law.GaussianLaw`, which carries the exact law of
the state instead of samples. So that every sampler works on both, a step may only

* add and subtract states, multiply or divide them by *deterministic* coefficients (Python
  numbers, 0-d tensors, or per-coordinate tensors), and
* use the helpers of this module (:func:`axpy`, :func:`rms`, :func:`mean_square_norm`,
  :func:`finite_flag`) for norms and fused updates, and draw noise from the noise source.

**Every step is then affine in x and in the noise**, and with an affine model (Gaussian data has
an affine denoiser) the exact law of the output exists and is computed without Monte Carlo
noise. A step that multiplies two states, or takes a nonlinear function of one, raises
``NotAffineError`` on the law object: that step cannot be verified exactly.

Noise: a source implements :meth:`NoiseSource.normal` (a standard normal tied to the step
[t_a, t_b]) and/or :meth:`NoiseSource.increment` (W(t_b) − W(t_a)); ``channel`` selects an
independent Brownian motion.
"""

from __future__ import annotations

import math

import torch


def finite_flag(x):
    """Whether ``x`` has no NaN/Inf, as a 0-d bool tensor on x's device (no host sync) for tensors.

    One reduction pass: torch.aminmax propagates NaN to both outputs and ±Inf shows at an end
    (torch docs), ~20× cheaper than materialising ``isfinite(x)`` for a large batch on CPU.
    """
    if not isinstance(x, torch.Tensor):
        return x.finite_flag()
    if x.numel() == 0:
        return torch.ones((), dtype=torch.bool, device=x.device)
    low, high = torch.aminmax(x)
    return torch.isfinite(low) & torch.isfinite(high)


def all_finite(x) -> bool:
    """:func:`finite_flag` read on the host (one sync)."""
    return bool(finite_flag(x))


def mean_square_norm(x) -> torch.Tensor:
    """E‖x‖² over the batch (exact for a law object)."""
    if isinstance(x, torch.Tensor):
        return x.pow(2).flatten(1).sum(1).mean()
    return x.mean_square_norm()


def rms(x) -> torch.Tensor:
    """Root mean square over batch and dimensions (Hairer, Nørsett & Wanner I, eq. II.4.11)."""
    if isinstance(x, torch.Tensor):
        return x.pow(2).mean().sqrt()
    return (x.mean_square_norm() / x.numel_per_sample()).sqrt()


def axpy(y, a, x):
    """y + a x, fused into one kernel (torch.add with alpha) for tensors and a scalar CPU ``a``;
    the plain expression otherwise (law objects, coefficients on an accelerator)."""
    if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
        if isinstance(a, float | int) or (isinstance(a, torch.Tensor) and a.ndim == 0
                                          and a.device.type == "cpu"):
            return torch.add(y, x, alpha=float(a))
    return y + a * x


def sqrt_dt(t_a, t_b) -> float:
    """√|t_b − t_a| as a Python float."""
    return math.sqrt(abs(float(t_b) - float(t_a)))


class NoiseSource:
    """Base class of noise sources: implement :meth:`normal` (or :meth:`increment`)."""

    def normal(self, t_a, t_b, like, channel: int = 0):
        """A standard normal shaped like ``like``: (W(t_b) − W(t_a))/√|t_b − t_a|."""
        return self.increment(t_a, t_b, like, channel) / sqrt_dt(t_a, t_b)

    def increment(self, t_a, t_b, like, channel: int = 0):
        """W(t_b) − W(t_a) = √|t_b − t_a| · z."""
        return self.normal(t_a, t_b, like, channel) * sqrt_dt(t_a, t_b)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.normal is NoiseSource.normal and cls.increment is NoiseSource.increment:
            raise TypeError(f"noise source {cls.__name__} must implement normal() or increment()")
