"""Gaussian data N(μ, Σ): exact score, denoiser, marginals, flow map and output-law metrics.

Σ = U diag(λ) Uᵀ is diagonalised once; with ``U = None`` the problem lives in eigen-coordinates,
where everything is elementwise and dimension 10⁴+ is cheap. Under the kernel
x_t = s x₀ + sσ ε the marginal is p_t = N(s μ, s² (Σ + σ² I)) and the denoiser is the posterior
mean E[x₀|x_t] = μ + Σ (Σ + σ² I)⁻¹ (x_t/s − μ).
"""

from __future__ import annotations

import math

import torch

from sdebench.problems.law import GaussianLaw
from sdebench.problems.protocol import EXACT_LAW, LOG_DENSITY, PATHS, SAMPLES
from sdebench.theory.schedule import Schedule


class GaussianProblem:
    """Data N(μ, U diag(λ) Uᵀ); ``eigenvectors=None`` means U = I (eigen-coordinates), where the
    exact output law of a sampler is available (capability ``"exact_law"``)."""

    def __init__(self, schedule: Schedule, mean: torch.Tensor, eigenvalues: torch.Tensor,
                 eigenvectors: torch.Tensor | None = None, *, check_values: bool = True):
        mean, eigenvalues = torch.as_tensor(mean), torch.as_tensor(eigenvalues)
        if mean.ndim != 1 or eigenvalues.shape != mean.shape:
            raise ValueError(
                f"mean and eigenvalues must be 1-D of the same length, got {tuple(mean.shape)} "
                f"and {tuple(eigenvalues.shape)}"
            )
        if check_values and not (eigenvalues > 0).all():  # a host read; skipped by to()
            raise ValueError("covariance eigenvalues must be positive")
        if eigenvectors is not None and eigenvectors.shape != (mean.numel(), mean.numel()):
            raise ValueError(f"eigenvectors must be ({mean.numel()}, {mean.numel()})")
        self.schedule = schedule
        self.mean, self.eigenvalues, self.eigenvectors = mean, eigenvalues, eigenvectors
        self.dim = mean.numel()

    @classmethod
    def from_covariance(cls, schedule: Schedule, mean: torch.Tensor, covariance: torch.Tensor):
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        return cls(schedule, mean, eigenvalues, eigenvectors)

    @classmethod
    def random(cls, schedule: Schedule, dim: int, *, seed: int = 0, dtype=torch.float64,
               device="cpu", condition: float = 100.0):
        """Mean ~ N(0, I), eigenvalues log-uniform in [1/√cond, √cond], diagonal (eigen-coords)."""
        generator = torch.Generator().manual_seed(seed)
        mean = torch.randn(dim, generator=generator, dtype=dtype)
        log_span = math.log(condition) / 2
        eigenvalues = torch.exp((2 * torch.rand(dim, generator=generator, dtype=dtype) - 1) * log_span)
        return cls(schedule, mean.to(device), eigenvalues.to(device))

    def __repr__(self) -> str:
        rotated = "" if self.eigenvectors is None else ", rotated"
        return (f"GaussianProblem({self.schedule.name!r}, mean={self.mean.tolist()}, "
                f"eigenvalues={self.eigenvalues.tolist()}{rotated})")

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @property
    def dtype(self) -> torch.dtype:
        return self.mean.dtype

    @property
    def capabilities(self) -> frozenset:
        exact = {EXACT_LAW} if self.eigenvectors is None else set()
        return frozenset({SAMPLES, PATHS, LOG_DENSITY, *exact})

    def to(self, dtype=None, device=None) -> GaussianProblem:
        convert = lambda v: None if v is None else v.to(dtype=dtype, device=device)  # noqa: E731
        return GaussianProblem(self.schedule, convert(self.mean), convert(self.eigenvalues),
                               convert(self.eigenvectors), check_values=False)

    def eigen(self) -> GaussianProblem:
        """The same problem in eigen-coordinates (U = I)."""
        if self.eigenvectors is None:
            return self
        return GaussianProblem(self.schedule, self.eigenvectors.T @ self.mean, self.eigenvalues)

    # -- exact quantities ---------------------------------------------------------------------
    def _rotate_in(self, v):
        return v if self.eigenvectors is None else v @ self.eigenvectors

    def _rotate_out(self, v):
        return v if self.eigenvectors is None else v @ self.eigenvectors.T

    def _coords(self, t):
        """(s, sσ): both finite at a pure-noise end (s = 0, σ = ∞), where σ itself is not."""
        sched = self.schedule.numeric
        return sched.s(t), sched.kernel_std(t)

    def denoiser(self, x, t):
        """E[x₀ | x_t = x]; accepts tensors (batch, d) and :class:`GaussianLaw` states."""
        return self._denoise(x, *self._coords(t))

    def denoise_at(self, x, s, sigma):
        """E[x₀ | s x₀ + sσε = x] = m + U diag(λ/(λ + σ²)) Uᵀ (x/s − m), for kernel coefficients
        given directly (e.g. from a peer library's discrete ᾱ: s = √ᾱ, σ = √((1 − ᾱ)/ᾱ))."""
        return self._denoise(x, s, s * sigma)

    def _denoise(self, x, s, std):
        """The posterior mean in s and std = sσ: λ/(λ + σ²) (x/s − m) = (sλ/(s²λ + std²)) (x − s m),
        which is finite (0) where s = 0."""
        mean_eig = self._rotate_in(self.mean)
        gain_over_s = s * self.eigenvalues / (s**2 * self.eigenvalues + std**2)
        if isinstance(x, GaussianLaw):
            if self.eigenvectors is not None:
                raise ValueError("exact laws are propagated in eigen-coordinates: use .eigen()")
            return gain_over_s * x + (1 - s * gain_over_s) * mean_eig
        centred = self._rotate_in(x - s * self.mean)
        return self.mean + self._rotate_out(gain_over_s * centred)

    def marginal_std_eigen(self, t) -> torch.Tensor:
        s, std = self._coords(t)
        return torch.sqrt(s**2 * self.eigenvalues + std**2)

    def sample_marginal(self, t, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Exact samples of p_t, shape (n, d)."""
        s, _ = self._coords(t)
        z = torch.randn((n, self.dim), generator=generator, dtype=self.mean.dtype,
                        device=self.mean.device)
        return s * self.mean + self._rotate_out(z * self.marginal_std_eigen(t))

    def marginal_law(self, t, source: int = 0) -> GaussianLaw:
        """p_t as a :class:`GaussianLaw` (eigen-coordinates) with ξ_source."""
        s, _ = self._coords(t)
        return GaussianLaw.gaussian(s * self._rotate_in(self.mean), self.marginal_std_eigen(t), source)

    def log_density(self, x, t) -> torch.Tensor:
        """log p_t(x) for x of shape (batch, d)."""
        s, _ = self._coords(t)
        std = self.marginal_std_eigen(t)
        z = self._rotate_in(x - s * self.mean) / std
        return -0.5 * (z**2).sum(-1) - torch.log(std).sum() - 0.5 * self.dim * math.log(2 * math.pi)

    def flow_map(self, x, t_from, t_to):
        """Exact PF-ODE map: per eigen-coordinate x ↦ s' μ + (s'√(λ+σ'²))/(s√(λ+σ²)) (x − s μ)."""
        s, _ = self._coords(t_from)
        s_to, _ = self._coords(t_to)
        ratio = self.marginal_std_eigen(t_to) / self.marginal_std_eigen(t_from)
        return s_to * self.mean + self._rotate_out(ratio * self._rotate_in(x - s * self.mean))

    # -- distances of a law to p_t (eigen-coordinates) ----------------------------------------
    def w2(self, law: GaussianLaw, t) -> torch.Tensor:
        """W₂(law, p_t) = (‖m − m_t‖² + ‖√v − √v_t‖²)^½ (Gelbrich; commuting covariances)."""
        s, _ = self._coords(t)
        target_mean = s * self._rotate_in(self.mean)
        target_std = self.marginal_std_eigen(t)
        return torch.sqrt(((law.mean - target_mean) ** 2).sum()
                          + ((law.variance.sqrt() - target_std) ** 2).sum())

    def kl(self, law: GaussianLaw, t) -> torch.Tensor:
        """KL(law ‖ p_t) = ½ Σ [v/v_t + (m − m_t)²/v_t − 1 − log(v/v_t)]."""
        s, _ = self._coords(t)
        target_mean = s * self._rotate_in(self.mean)
        target_var = self.marginal_std_eigen(t) ** 2
        ratio = law.variance / target_var
        return 0.5 * (ratio + (law.mean - target_mean) ** 2 / target_var - 1 - torch.log(ratio)).sum()
