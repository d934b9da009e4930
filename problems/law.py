"""Exact laws of sampler outputs for Gaussian data.

With an affine denoiser (Gaussian data) every solver step is an affine map of the state plus
independent Gaussian noise. :class:`GaussianLaw` represents X = m + Σ_k c_k ξ_k coordinatewise,
with independent ξ_k ~ N(0, I_d); running a solver *on the law* (it supports the arithmetic the
solvers use) propagates mean and variance exactly: no Monte Carlo noise. Coordinates must be the
eigen-coordinates of the data covariance (solvers are rotation-equivariant, so this is exact).
"""

from __future__ import annotations

import torch

from sdebench.state import NoiseSource


class NotAffineError(TypeError):
    """An operation would make the state a non-affine function of the Gaussian sources."""


class GaussianLaw:
    """X = mean + Σ_k coef[k] ⊙ ξ_k, ξ_k iid N(0, I_d); shape (1, d) like a batch of one."""

    def __init__(self, mean: torch.Tensor, coef: torch.Tensor):
        self.mean = mean  # (d,)
        self.coef = coef  # (K, d)

    @classmethod
    def deterministic(cls, mean: torch.Tensor) -> GaussianLaw:
        return cls(mean, mean.new_zeros((0, mean.numel())))

    @classmethod
    def gaussian(cls, mean: torch.Tensor, std: torch.Tensor, source: int) -> GaussianLaw:
        """mean + std ⊙ ξ_source."""
        coef = mean.new_zeros((source + 1, mean.numel()))
        coef[source] = std
        return cls(mean, coef)

    @property
    def shape(self):
        return torch.Size((1, self.mean.numel()))

    @property
    def dtype(self):
        return self.mean.dtype

    @property
    def device(self):
        return self.mean.device

    @property
    def variance(self) -> torch.Tensor:
        return self.coef.pow(2).sum(0)

    def numel_per_sample(self) -> int:
        return self.mean.numel()

    def mean_square_norm(self) -> torch.Tensor:
        return (self.mean.pow(2) + self.variance).sum()

    def finite_flag(self) -> torch.Tensor:
        """Whether mean and coefficients are finite (the state protocol of sdebench.state)."""
        return torch.isfinite(self.mean).all() & torch.isfinite(self.coef).all()

    @staticmethod
    def _coefficient(value) -> torch.Tensor | float:
        """A deterministic multiplier: scalar, 0-dim tensor, or (d,)/(1, d) tensor."""
        if isinstance(value, torch.Tensor) and value.ndim == 2:
            return value.reshape(-1)
        return value

    def _padded(self, other: GaussianLaw):
        k = max(self.coef.shape[0], other.coef.shape[0])
        pad = lambda c: torch.cat([c, c.new_zeros((k - c.shape[0], c.shape[1]))])  # noqa: E731
        return pad(self.coef), pad(other.coef)

    def __add__(self, other):
        if isinstance(other, GaussianLaw):
            a, b = self._padded(other)
            return GaussianLaw(self.mean + other.mean, a + b)
        return GaussianLaw(self.mean + self._coefficient(other), self.coef)

    __radd__ = __add__

    def __neg__(self):
        return GaussianLaw(-self.mean, -self.coef)

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        if isinstance(other, GaussianLaw):
            raise NotAffineError("product of two random states is not affine")
        c = self._coefficient(other)
        return GaussianLaw(self.mean * c, self.coef * c)

    __rmul__ = __mul__

    def __truediv__(self, other):
        if isinstance(other, GaussianLaw):
            raise NotAffineError("division by a random state is not affine")
        return self * (1 / self._coefficient(other))


class ExactLawNoise(NoiseSource):
    """Noise source for :class:`GaussianLaw` states: every draw is a fresh source ξ_k ~ N(0, 1)."""

    def __init__(self, first_source: int = 1):
        self.next_source = first_source

    def normal(self, t_a, t_b, like: GaussianLaw, channel: int = 0) -> GaussianLaw:
        law = GaussianLaw.gaussian(torch.zeros_like(like.mean), torch.ones_like(like.mean),
                                   self.next_source)
        self.next_source += 1
        return law
