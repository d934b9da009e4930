"""Image-scale Gaussian data with exact answers: a power-law spectrum in a known orthogonal image
basis (``spectrum``) and data near a k-dimensional subspace of it (``lowrank``).

An image has shape (3, res, res), d = 3 res². The basis is B = C ⊗ D ⊗ D: D the orthonormal
DCT-II matrix applied along each image axis,

    D[u, i] = √(2/n) c_u cos(π (2i + 1) u / (2n)),   c₀ = 1/√2, c_u = 1 otherwise

(Ahmed, Natarajan & Rao 1974, IEEE Trans. Comput. C-23; Strang 1999, SIAM Rev. 41(1), "DCT-2"),
and C a fixed orthogonal 3×3 colour mixing, the decorrelated opponent axes of Ruderman, Cronin
& Chiao 1998 (J. Opt. Soc. Am. A 15(8), the lαβ space): luminance (1, 1, 1)/√3, yellow–blue
(1, 1, −2)/√6, red–green (1, −1, 0)/√2. Data are x₀ = μ + B diag(√λ) z, z ~ N(0, I_d), so
Σ = B diag(λ) Bᵀ is diagonal in B.

The problem lives in the coefficients Bᵀx, its eigen-coordinates: there every exact quantity is
elementwise, O(d) (:class:`~sdebench.problems.gaussian.GaussianProblem` with U = I). That is
exact for the study's samplers: each step combines the state, the denoiser's output and fresh
isotropic noise with scalar coefficients, the denoiser commutes with B (D(Bx) = B D_eig(x)) and
isotropic noise is invariant under B, so the output law in pixels is B applied to the output law
in coefficients, and W₂ and KL are invariant under the rotation. Pixel-space answers
(``image_denoiser``, ``image_score``, ``sample_images``) go through the fast transform: products
with the res × res matrix D along each image axis and with C along the colour axis, O(res³) per
image, never a d × d matrix.
"""

from __future__ import annotations

import math

import torch

from sdebench.problems.gaussian import GaussianProblem
from sdebench.registry import check_number
from sdebench.theory.schedule import Schedule

CHANNELS = 3
OPPONENT_COLOURS = torch.tensor([[1 / math.sqrt(3), 1 / math.sqrt(6), 1 / math.sqrt(2)],
                                 [1 / math.sqrt(3), 1 / math.sqrt(6), -1 / math.sqrt(2)],
                                 [1 / math.sqrt(3), -2 / math.sqrt(6), 0.0]], dtype=torch.float64)
"""C: column k is the RGB direction of colour coefficient k (luminance, yellow–blue, red–green;
Ruderman, Cronin & Chiao 1998, eq. 7's lαβ axes, here applied to RGB)."""

COLOUR_VARIANCES = (1.0, 0.1, 0.03)
"""Relative variance of the three colour coefficients (luminance dominates, as in natural
images): an illustrative choice, not fitted to a data set."""

MAX_RESOLUTION = 1024


def dct_matrix(n: int, dtype=torch.float64, device="cpu") -> torch.Tensor:
    """The orthonormal DCT-II matrix D (n × n): D[u, i] = √(2/n) c_u cos(π(2i + 1)u/(2n)),
    c₀ = 1/√2; row u is the u-th cosine, so D x transforms a signal and Dᵀ X inverts it."""
    u = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    matrix = math.sqrt(2 / n) * torch.cos(math.pi * (2 * i + 1) * u / (2 * n))
    matrix[0] /= math.sqrt(2)
    return matrix.to(dtype=dtype, device=device)


class ImageBasis:
    """B = C ⊗ D ⊗ D on images (3, res, res): coefficient (k, u, v) — colour k, vertical
    frequency u, horizontal frequency v, flattened in that order — is the image
    C[:, k] ⊗ D[u, :] ⊗ D[v, :]. Both directions cost O(res³) per image."""

    def __init__(self, res: int, dtype=torch.float64, device="cpu"):
        self.res = res
        self.dct = dct_matrix(res, dtype, device)
        self.colour = OPPONENT_COLOURS.to(dtype=dtype, device=device)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (CHANNELS, self.res, self.res)

    @property
    def dim(self) -> int:
        return CHANNELS * self.res**2

    def to(self, dtype=None, device=None) -> ImageBasis:
        return ImageBasis(self.res, dtype or self.dct.dtype, device or self.dct.device)

    def to_images(self, coefficients: torch.Tensor) -> torch.Tensor:
        """x = B z: (..., d) coefficients → (..., 3, res, res) images,
        x[c, i, j] = Σ_k C[c, k] Σ_u Σ_v D[u, i] D[v, j] z[k, u, v]."""
        if coefficients.shape[-1] != self.dim:
            raise ValueError(f"coefficients must have shape (..., {self.dim}) for images of shape "
                             f"{self.image_shape}, got {tuple(coefficients.shape)}")
        z = coefficients.reshape(*coefficients.shape[:-1], *self.image_shape)
        spatial = self.dct.T @ z @ self.dct
        return torch.einsum("ck,...kij->...cij", self.colour, spatial)

    def to_coefficients(self, images: torch.Tensor) -> torch.Tensor:
        """z = Bᵀ x: (..., 3, res, res) images → (..., d) coefficients."""
        if tuple(images.shape[-3:]) != self.image_shape:
            raise ValueError(f"images must have shape (..., {', '.join(map(str, self.image_shape))}),"
                             f" got {tuple(images.shape)}")
        colours = torch.einsum("ck,...cij->...kij", self.colour, images)
        return (self.dct @ colours @ self.dct.T).flatten(-3)

    def frequencies(self) -> torch.Tensor:
        """f_(k,u,v) = √(u² + v²) per coefficient, shape (d,) (DCT index u is u/2 cycles per
        image width)."""
        u = torch.arange(self.res, dtype=torch.float64)
        radial = torch.sqrt(u.unsqueeze(1) ** 2 + u.unsqueeze(0) ** 2)
        return radial.expand(CHANNELS, -1, -1).flatten()


class ImageGaussianProblem(GaussianProblem):
    """N(μ, B diag(λ) Bᵀ) on images, held in the coefficients z = Bᵀx (the protocol's
    ``denoiser``, ``sample_marginal``, exact laws, W₂ and KL are in these coordinates); the
    ``image_*`` methods and :meth:`sample_images` answer in pixel space, shape (..., 3, res, res)."""

    def __init__(self, schedule: Schedule, basis: ImageBasis, mean: torch.Tensor,
                 eigenvalues: torch.Tensor, *, check_values: bool = True):
        super().__init__(schedule, mean, eigenvalues, check_values=check_values)
        if self.dim != basis.dim:
            raise ValueError(f"{self.dim} coefficients do not fit images of shape "
                             f"{basis.image_shape} ({basis.dim} coefficients)")
        self.basis = basis

    def __repr__(self) -> str:
        return (f"ImageGaussianProblem({self.schedule.name!r}, images {self.basis.image_shape}, "
                f"eigenvalues in [{float(self.eigenvalues.min()):.3g}, "
                f"{float(self.eigenvalues.max()):.3g}])")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.basis.image_shape

    def to(self, dtype=None, device=None) -> ImageGaussianProblem:
        return ImageGaussianProblem(self.schedule, self.basis.to(dtype, device),
                                    self.mean.to(dtype=dtype, device=device),
                                    self.eigenvalues.to(dtype=dtype, device=device),
                                    check_values=False)

    def mean_image(self) -> torch.Tensor:
        """μ = B (Bᵀμ), shape (3, res, res)."""
        return self.basis.to_images(self.mean)

    def sample_images(self, t, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n exact samples of p_t in pixel space, shape (n, 3, res, res): B applied to exact
        samples of the coefficients."""
        return self.basis.to_images(self.sample_marginal(t, n, generator))

    def image_denoiser(self, images: torch.Tensor, t) -> torch.Tensor:
        """E[x₀ | x_t = x] = μ + B diag(λ/(λ + σ²)) Bᵀ(x/s − μ) for images (..., 3, res, res)."""
        return self.basis.to_images(self.denoiser(self.basis.to_coefficients(images), t))

    def image_score(self, images: torch.Tensor, t) -> torch.Tensor:
        """∇log p_t(x) = (s x̂₀ − x)/(s²σ²) (Tweedie; the schedule's x₀ → score conversion)."""
        to_score = self.schedule.numeric.conversion("x0", "score")
        return to_score(images, self.image_denoiser(images, t), t)


def _check_image_size(name: str, res, dim) -> int:
    res = check_number("res", res, low=2, high=MAX_RESOLUTION, integer=True)
    if dim is not None and (isinstance(dim, bool) or dim != CHANNELS * res**2):
        raise ValueError(f"problem {name!r} with res={res} has dimension {CHANNELS * res**2} "
                         f"(images {CHANNELS}×{res}×{res}), got dim={dim!r}: leave --dim out or "
                         "change res")
    return res


def power_law_spectrum(basis: ImageBasis, alpha: float, f0: float) -> torch.Tensor:
    """λ_(k,u,v) ∝ w_k (f_uv² + f₀²)^(−α/2), f_uv = √(u² + v²), w the colour variances
    (:data:`COLOUR_VARIANCES`): power ∝ 1/f^α above f₀ (α ≈ 2 for natural images, Field 1987,
    J. Opt. Soc. Am. A 4(12); van der Schaaf & van Hateren 1996, Vision Res. 36(17)).
    Normalised so that the mean eigenvalue is 1: tr Σ / d = 1, the average pixel variance."""
    weights = torch.tensor(COLOUR_VARIANCES, dtype=torch.float64).repeat_interleave(basis.res**2)
    spectrum = weights * (basis.frequencies() ** 2 + f0**2) ** (-alpha / 2)
    return spectrum / spectrum.mean()


def _grey_mean(basis: ImageBasis, mean: float) -> torch.Tensor:
    """Bᵀμ of the image whose every pixel is ``mean``."""
    return basis.to_coefficients(torch.full(basis.image_shape, float(mean), dtype=torch.float64))


def spectrum_problem(schedule: Schedule, *, dim: int | None = None, seed: int = 0, res: int = 64,
                     alpha: float = 2.0, f0: float = 1.0, mean: float = 0.0) -> ImageGaussianProblem:
    """Images (3, res, res), covariance diagonal in colour ⊗ 2-D DCT, power ∝ 1/f^α.

    Covariance B diag(λ) Bᵀ, λ the power law of :func:`power_law_spectrum` (mean eigenvalue 1;
    α in [0, 8], beyond which the highest frequencies underflow), every pixel's mean ``mean``.
    ``dim``: None or 3 res²; ``seed``: unused, nothing here is random."""
    res = _check_image_size("spectrum", res, dim)
    check_number("alpha", alpha, low=0, high=8)
    check_number("f0", f0, low=0, low_open=True)
    check_number("mean", mean)
    basis = ImageBasis(res)
    return ImageGaussianProblem(schedule, basis, _grey_mean(basis, mean),
                                power_law_spectrum(basis, alpha, f0))


def lowrank_problem(schedule: Schedule, *, dim: int | None = None, seed: int = 0, res: int = 64,
                    k: int = 16, eps: float = 1e-4, mean: float = 0.0) -> ImageGaussianProblem:
    """Images (3, res, res) near a k-dimensional subspace: λ = 1 on k DCT directions, ε elsewhere.

    The k directions are the coefficients where the α = 2 spectrum is largest (luminance and
    colour at the lowest frequencies; ties in flat order); 0 < ε < 1 on the other d − k: the
    score's stiffness grows like 1/(ε + σ²) as t → 0. ``dim`` and ``seed`` as for
    :func:`spectrum_problem`."""
    res = _check_image_size("lowrank", res, dim)
    k = check_number("k", k, low=1, high=CHANNELS * res**2, integer=True)
    check_number("eps", eps, low=0, high=1, low_open=True, high_open=True)
    check_number("mean", mean)
    basis = ImageBasis(res)
    order = torch.argsort(power_law_spectrum(basis, 2.0, 1.0), descending=True, stable=True)
    eigenvalues = torch.full((basis.dim,), float(eps), dtype=torch.float64)
    eigenvalues[order[:k]] = 1.0
    return ImageGaussianProblem(schedule, basis, _grey_mean(basis, mean), eigenvalues)


def image_study_defaults(*, res: int, **_) -> dict:
    """What a study of an image problem (its full parameters) uses unless told otherwise: its
    dimension 3 res²; a batch of 2 — the exact law gives W₂ and KL, the batch only times the
    sampler and feeds the strong error, whose shared Brownian path stores batch × d numbers at
    every time of every grid; and steps 4 to 32 — an SDE sampler's exact law carries one
    coefficient vector per noise draw, so its cost grows like draws² d: annealed Langevin (10
    draws a step) took 340 s at 64 steps at 64² on two idle cores (its law and the law's
    round-off re-run), a quarter of that at 32."""
    return {"steps": (4, 8, 16, 32), "batch": 2,
            "dim": CHANNELS * _check_image_size("image", res, None) ** 2}


spectrum_problem.study_defaults = image_study_defaults
lowrank_problem.study_defaults = image_study_defaults
