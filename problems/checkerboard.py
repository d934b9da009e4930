"""The 2-D checkerboard: data uniform on the black cells of a k × k board over [−a, a]², a
density with edges (no Gaussian component anywhere) whose score is still exact.

With y = x/s = x₀ + σε, a cell [l₁, u₁] × [l₂, u₂] contributes the product of two smoothed boxes
F(y; l, u) = Φ((u − y)/σ) − Φ((l − y)/σ), so

    p_t(x) = 1/(s² n w²) Σ_black F(y₁; l_i, u_i) F(y₂; l_j, u_j)      (n black cells of width w),

and the denoiser is E[x₀ | x_t = x] = Σ_black r_ij(y) (m(y₁; l_i, u_i), m(y₂; l_j, u_j)) with
responsibilities r_ij ∝ F F and the truncated-normal means
m(y; l, u) = y + σ (φ(α) − φ(β)) / (Φ(β) − Φ(α)), α = (l − y)/σ, β = (u − y)/σ (Johnson, Kotz &
Balakrishnan, Continuous Univariate Distributions I, §10.1). Everything is computed in log
space (``log_ndtr``), so cells far from y and tiny σ neither underflow nor cancel.
"""

from __future__ import annotations

import math

import torch

from sdebench.problems.protocol import LOG_DENSITY, PATHS, SAMPLES
from sdebench.theory.schedule import Schedule


def log_smoothed_box(y: torch.Tensor, low: torch.Tensor, high: torch.Tensor,
                     sigma) -> torch.Tensor:
    """log(Φ(β) − Φ(α)), α = (low − y)/σ, β = (high − y)/σ, broadcasting y (B, 1) against the
    cell edges (k,): from the lower tail where y lies below the box (Φ(−α) − Φ(−β)), so the
    difference of two numbers near 1 is never taken."""
    alpha, beta = (low - y) / sigma, (high - y) / sigma
    below = alpha > 0
    upper = torch.where(below, torch.special.log_ndtr(-alpha), torch.special.log_ndtr(beta))
    lower = torch.where(below, torch.special.log_ndtr(-beta), torch.special.log_ndtr(alpha))
    return upper + torch.log(-torch.expm1(lower - upper))


def truncated_normal_mean(y: torch.Tensor, low: torch.Tensor, high: torch.Tensor,
                          sigma) -> torch.Tensor:
    """E[X | X ∈ [low, high]] for X ~ N(y, σ²): y + σ (φ(α) − φ(β))/(Φ(β) − Φ(α))."""
    alpha, beta = (low - y) / sigma, (high - y) / sigma
    log_mass = log_smoothed_box(y, low, high, sigma)
    half_log_two_pi = 0.5 * math.log(2 * math.pi)
    ratio = torch.exp(-0.5 * alpha**2 - half_log_two_pi - log_mass) \
        - torch.exp(-0.5 * beta**2 - half_log_two_pi - log_mass)
    return (y + sigma * ratio).clamp(low, high)


class CheckerboardProblem:
    """Uniform data on the black cells ((i + j) even) of a ``cells`` × ``cells`` board over
    [−half_width, half_width]²; exact score, samples and log-density, no exact output law."""

    capabilities = frozenset({SAMPLES, PATHS, LOG_DENSITY})
    dim = 2

    def __init__(self, schedule: Schedule, cells: int = 4, half_width: float = 2.0,
                 dtype=torch.float64, device="cpu"):
        if isinstance(cells, bool) or not isinstance(cells, int) or cells < 2:
            raise ValueError(f"cells must be an integer >= 2, got {cells!r}")
        if not (math.isfinite(half_width) and half_width > 0):
            raise ValueError(f"half_width must be positive and finite, got {half_width!r}")
        self.schedule, self.cells, self.half_width = schedule, cells, float(half_width)
        edges = torch.linspace(-self.half_width, self.half_width, cells + 1, dtype=dtype,
                               device=device)
        self.low, self.high = edges[:-1], edges[1:]
        index = torch.arange(cells, device=device)
        self.black = (index[:, None] + index[None, :]) % 2 == 0  # (k, k)
        self.black_cells = torch.nonzero(self.black)  # (n, 2)

    @property
    def device(self) -> torch.device:
        return self.low.device

    @property
    def dtype(self) -> torch.dtype:
        return self.low.dtype

    def to(self, dtype=None, device=None) -> CheckerboardProblem:
        return CheckerboardProblem(self.schedule, self.cells, self.half_width,
                                   dtype=dtype or self.dtype, device=device or self.device)

    def _cells(self, x, t):
        """y = x/s, σ, and the log-weights of every cell (B, k, k), −inf on white cells."""
        numeric = self.schedule.numeric
        s, sigma = numeric.s(t), numeric.sigma(t)
        sigma = torch.clamp(torch.as_tensor(sigma, dtype=x.dtype), min=torch.finfo(x.dtype).tiny)
        y = x / s
        log_f = [log_smoothed_box(y[:, axis:axis + 1], self.low, self.high, sigma)
                 for axis in (0, 1)]
        log_cells = log_f[0][:, :, None] + log_f[1][:, None, :]
        return y, sigma, s, log_cells.masked_fill(~self.black, -math.inf)

    def log_density(self, x, t) -> torch.Tensor:
        """log p_t(x) = log Σ_black F F − log(n w² s²)."""
        _, _, s, log_cells = self._cells(x, t)
        width = 2 * self.half_width / self.cells
        normaliser = math.log(len(self.black_cells) * width**2)
        return torch.logsumexp(log_cells.flatten(1), dim=1) - normaliser - 2 * torch.log(
            torch.as_tensor(s, dtype=x.dtype))

    def denoiser(self, x, t):
        """E[x₀ | x_t = x]: the responsibilities of the cells times their truncated-normal
        means, coordinate by coordinate."""
        y, sigma, _, log_cells = self._cells(x, t)
        responsibilities = torch.softmax(log_cells.flatten(1), dim=1).view_as(log_cells)
        means = [truncated_normal_mean(y[:, axis:axis + 1], self.low, self.high, sigma)
                 for axis in (0, 1)]
        return torch.stack([(responsibilities.sum(2) * means[0]).sum(1),
                            (responsibilities.sum(1) * means[1]).sum(1)], dim=1)

    def sample_marginal(self, t, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n exact samples of p_t: a black cell uniformly, a point uniformly in it, then the
        kernel x = s(x₀ + σ ε)."""
        numeric = self.schedule.numeric
        s, sigma = numeric.s(t), numeric.sigma(t)
        chosen = torch.randint(len(self.black_cells), (n,), generator=generator,
                               device=self.device)
        cell = self.black_cells[chosen]
        u = torch.rand((n, 2), generator=generator, dtype=self.dtype, device=self.device)
        width = self.high[0] - self.low[0]
        x0 = self.low[cell] + u * width
        z = torch.randn((n, 2), generator=generator, dtype=self.dtype, device=self.device)
        return s * (x0 + sigma * z)
