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
    """X = mean + Σ_k coef[k] ⊙ ξ_k, ξ_k iid N(0, I_d); shape (1, d) like a batch of one.

    Stored as one tensor ``data`` of shape (1 + K, d), row 0 the mean and rows 1… the source
    coefficients: scaling a law is one tensor operation on both, adding two laws one (after
    padding the shorter to the same number of sources)."""

    def __init__(self, data: torch.Tensor):
        self.data = data

    @classmethod
    def gaussian(cls, mean: torch.Tensor, std: torch.Tensor, source: int) -> GaussianLaw:
        """mean + std ⊙ ξ_source."""
        data = mean.new_zeros((source + 2, mean.numel()))
        data[0] = mean
        data[source + 1] = std
        return cls(data)

    @property
    def mean(self) -> torch.Tensor:
        return self.data[0]

    @property
    def coef(self) -> torch.Tensor:
        return self.data[1:]

    @property
    def shape(self):
        return torch.Size((1, self.data.shape[1]))

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self):
        return self.data.device

    @property
    def variance(self) -> torch.Tensor:
        return self.coef.pow(2).sum(0)

    def numel_per_sample(self) -> int:
        return self.data.shape[1]

    def mean_square_norm(self) -> torch.Tensor:
        return (self.mean.pow(2) + self.variance).sum()

    def finite_flag(self) -> torch.Tensor:
        """Whether mean and coefficients are finite (the state protocol of sdebench.state)."""
        return torch.isfinite(self.data).all()

    @staticmethod
    def _coefficient(value) -> torch.Tensor | float:
        """A deterministic multiplier: scalar, 0-dim tensor, or (d,)/(1, d) tensor."""
        if isinstance(value, torch.Tensor) and value.ndim == 2:
            return value.reshape(-1)
        return value

    def _aligned(self, other: GaussianLaw) -> tuple[torch.Tensor, torch.Tensor]:
        """Both data tensors padded with zero coefficients to the same number of sources."""
        a, b = self.data, other.data
        if a.shape[0] < b.shape[0]:
            a = torch.nn.functional.pad(a, (0, 0, 0, b.shape[0] - a.shape[0]))
        elif b.shape[0] < a.shape[0]:
            b = torch.nn.functional.pad(b, (0, 0, 0, a.shape[0] - b.shape[0]))
        return a, b

    def __add__(self, other):
        if isinstance(other, GaussianLaw):
            a, b = self._aligned(other)
            return GaussianLaw(a + b)
        data = self.data.clone()
        data[0] += self._coefficient(other)
        return GaussianLaw(data)

    __radd__ = __add__

    def __neg__(self):
        return GaussianLaw(-self.data)

    def __sub__(self, other):
        if isinstance(other, GaussianLaw):
            a, b = self._aligned(other)
            return GaussianLaw(a - b)
        return self + (-other)

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        if isinstance(other, GaussianLaw):
            raise NotAffineError("product of two random states is not affine")
        return GaussianLaw(self.data * self._coefficient(other))

    __rmul__ = __mul__

    def __truediv__(self, other):
        if isinstance(other, GaussianLaw):
            raise NotAffineError("division by a random state is not affine")
        return GaussianLaw(self.data / self._coefficient(other))


class ExactLawNoise(NoiseSource):
    """Noise source for :class:`GaussianLaw` states: every draw is a fresh source ξ_k ~ N(0, 1)."""

    def __init__(self, first_source: int = 1):
        self.next_source = first_source

    def normal(self, t_a, t_b, like: GaussianLaw, channel: int = 0) -> GaussianLaw:
        law = GaussianLaw.gaussian(torch.zeros_like(like.mean), torch.ones_like(like.mean),
                                   self.next_source)
        self.next_source += 1
        return law
