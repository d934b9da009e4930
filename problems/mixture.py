"""Gaussian-mixture data Σ_k w_k N(m_k, diag v_k): a non-linear score with exact answers.

p_t = Σ_k w_k N(s m_k, s² diag(v_k + σ²)); the denoiser is Σ_k r_k(x) [m_k + v_k/(v_k+σ²)(x/s − m_k)]
with responsibilities r_k ∝ w_k N(x; s m_k, s²(v_k + σ²)).
"""

from __future__ import annotations

import math

import torch

from sdebench.problems.protocol import LOG_DENSITY, PATHS, SAMPLES
from sdebench.theory.schedule import Schedule


class GaussianMixtureProblem:
    """Data Σ_k w_k N(m_k, diag v_k): exact score, samples and log-density; no exact output law
    (the denoiser is not affine), so metrics are Monte Carlo."""

    capabilities = frozenset({SAMPLES, PATHS, LOG_DENSITY})

    def __init__(self, schedule: Schedule, weights: torch.Tensor, means: torch.Tensor,
                 variances: torch.Tensor, *, check_values: bool = True):
        if means.ndim != 2 or variances.shape != means.shape or weights.shape != means.shape[:1]:
            raise ValueError(
                f"expected weights (K,), means (K, d), variances (K, d); got {tuple(weights.shape)}, "
                f"{tuple(means.shape)}, {tuple(variances.shape)}"
            )
        if check_values and not ((weights > 0).all() and (variances > 0).all()):  # host read
            raise ValueError("weights and variances must be positive")
        self.schedule = schedule
        self.weights = weights / weights.sum()
        self.means, self.variances = means, variances
        self.dim = means.shape[1]

    @classmethod
    def ring(cls, schedule: Schedule, components: int = 8, radius: float = 2.0,
             std: float = 0.2, dtype=torch.float64, device="cpu"):
        """The 2-D benchmark: ``components`` equal-weight Gaussians on a circle."""
        angles = torch.arange(components, dtype=dtype) * (2 * math.pi / components)
        means = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
        variances = torch.full_like(means, std**2)
        weights = torch.full((components,), 1.0 / components, dtype=dtype)
        return cls(schedule, weights.to(device), means.to(device), variances.to(device))

    @property
    def device(self) -> torch.device:
        return self.means.device

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    def to(self, dtype=None, device=None) -> GaussianMixtureProblem:
        convert = lambda v: v.to(dtype=dtype, device=device)  # noqa: E731
        return GaussianMixtureProblem(self.schedule, convert(self.weights), convert(self.means),
                                      convert(self.variances), check_values=False)

    def _component_log_densities(self, x, t):
        sched = self.schedule.numeric
        s, std = sched.s(t), sched.kernel_std(t)
        var = s**2 * self.variances + std**2  # (K, d): s²(v + σ²), finite where s = 0
        diff = x[:, None, :] - s * self.means[None]  # (B, K, d)
        return (-0.5 * (diff**2 / var).sum(-1) - 0.5 * torch.log(2 * math.pi * var).sum(-1)
                + torch.log(self.weights))

    def log_density(self, x, t) -> torch.Tensor:
        return torch.logsumexp(self._component_log_densities(x, t), dim=1)

    def denoiser(self, x, t):
        sched = self.schedule.numeric
        s, std = sched.s(t), sched.kernel_std(t)
        responsibilities = torch.softmax(self._component_log_densities(x, t), dim=1)  # (B, K)
        # v/(v + σ²) (x/s − m) = s v/(s² v + s²σ²) (x − s m): finite at a pure-noise end (s = 0)
        gain_over_s = s * self.variances / (s**2 * self.variances + std**2)
        posterior = self.means[None] + gain_over_s[None] * (x[:, None, :] - s * self.means[None])
        return (responsibilities[..., None] * posterior).sum(1)

    def sample_marginal(self, t, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        sched = self.schedule.numeric
        s, std = sched.s(t), sched.kernel_std(t)
        index = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn((n, self.dim), generator=generator, dtype=self.means.dtype,
                        device=self.means.device)
        return s * self.means[index] + torch.sqrt(s**2 * self.variances[index] + std**2) * z
