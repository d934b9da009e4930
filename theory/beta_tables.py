"""Discrete training tables β_0 … β_{T−1} and the continuous-time schedule of one.

A model trained on a discrete table (DDPM and everything built on its code: Stable Diffusion,
SDXL, diffusers' schedulers) has ᾱ_τ = Π_{k≤τ} (1 − β_k) (Ho et al. 2020, §2), i.e. a VP kernel
with σ_τ² = 1/ᾱ_τ − 1, at τ = 0 … T − 1 only. Two β profiles cover the tables that ship:

* ``linear``: β_k = β_start + (β_end − β_start) k/(T − 1) (Ho et al. 2020, §4: 10⁻⁴ to 0.02,
  T = 1000; diffusers' default);
* ``scaled_linear``: β_k = (√β_start + (√β_end − √β_start) k/(T − 1))² (the latent diffusion
  code's ``make_beta_schedule("linear")``, Rombach et al. 2022; Stable Diffusion 1.x/2.x and SDXL
  ship 0.00085 to 0.012, T = 1000).

**The continuous schedule of a table** (:meth:`BetaTable.integrated_beta`) has t = τ/(T − 1) and
B(t) = −log ᾱ(t) = B_0 + (B_{T−1} − B_0) I(t)/I(1), I(t) = ∫₀ᵗ β̂(u) du, β̂ the table's profile
in u = k/(T − 1) and B_τ = −Σ_{k≤τ} log(1 − β_k) computed at 70 digits. Its σ equals the table's
at both ends exactly (to those digits), so a sampler started at the table's largest σ and
stopped at its smallest is judged against the right laws: the data's law at noise level σ,
x₀ + σ ε, is the same under every schedule, and a scheduler that steps on its own table reads
only σ's from it. Between the ends it follows the table to within its O(β) steps (the sum of a
smooth profile against its integral); there it only maps the study's t to σ for sdebench's own
grids and samplers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import mpmath
import sympy

from sdebench.theory.kernel import T

BETA_PROFILES = ("linear", "scaled_linear")


def integrated_linear_beta(beta_min, beta_max, t=T):
    """B(t) = ∫₀ᵗ β(u) du for β(u) = β_min + u (β_max − β_min)."""
    return beta_min * t + (beta_max - beta_min) * t**2 / 2


def time_of_integrated_linear_beta(b, beta_min, beta_max):
    """Positive root t of B(t) = b (B quadratic in t; t = b/β when β is constant, slope 0)."""
    slope = beta_max - beta_min
    # = (√(β_min² + 2Δβ b) − β_min)/Δβ, which cancels where β_min² ≫ Δβ b (near t_min)
    return 2 * b / (beta_min + sympy.sqrt(beta_min**2 + 2 * slope * b))
_DIGITS = 70  # B_0, B_{T−1}: 20 digits beyond the 50 that theory's residuals are checked at


@dataclass(frozen=True)
class BetaTable:
    """A discrete training table: its β profile (:data:`BETA_PROFILES`), first and last β (exact
    numbers) and size T, named as diffusers' schedulers name them."""

    beta_schedule: str
    beta_start: sympy.Expr
    beta_end: sympy.Expr
    num_train_timesteps: int

    def __post_init__(self):
        if self.beta_schedule not in BETA_PROFILES:
            raise ValueError(f"beta_schedule must be one of {BETA_PROFILES}, got "
                             f"{self.beta_schedule!r}")
        if not 0 < self.beta_start < self.beta_end < 1:
            raise ValueError(f"expected 0 < beta_start < beta_end < 1, got beta_start = "
                             f"{self.beta_start}, beta_end = {self.beta_end}")
        if isinstance(self.num_train_timesteps, bool) or \
                not isinstance(self.num_train_timesteps, int) or self.num_train_timesteps < 2:
            raise ValueError(f"num_train_timesteps must be an integer ≥ 2, got "
                             f"{self.num_train_timesteps!r}")

    def _profile_ends(self):
        """(a, c) with β̂(u) = a + c u (linear) or (a + c u)² (scaled_linear)."""
        if self.beta_schedule == "linear":
            return self.beta_start, self.beta_end - self.beta_start
        root_start = sympy.sqrt(self.beta_start)
        return root_start, sympy.sqrt(self.beta_end) - root_start

    def betas(self) -> list:
        """β_0 … β_{T−1} as mpmath numbers at the working precision."""
        a, c = (mpmath.mpmathify(sympy.N(value, _DIGITS + 10)) for value in self._profile_ends())
        last = self.num_train_timesteps - 1
        profile = (lambda u: a + c * u) if self.beta_schedule == "linear" \
            else (lambda u: (a + c * u) ** 2)
        return [profile(mpmath.mpf(k) / last) for k in range(self.num_train_timesteps)]

    @cached_property
    def sigmas(self) -> tuple[float, ...]:
        """σ_τ = √(1/ᾱ_τ − 1), τ = 0 … T − 1, ᾱ_τ = Π_{k≤τ}(1 − β_k) formed at 70 digits, as
        floats."""
        with mpmath.workdps(_DIGITS):
            alphas_cumprod, product = [], mpmath.mpf(1)
            for beta in self.betas():
                product *= 1 - beta
                alphas_cumprod.append(product)
            return tuple(float(mpmath.sqrt(1 / a - 1)) for a in alphas_cumprod)

    @cached_property
    def integrated_beta_ends(self) -> tuple[sympy.Rational, sympy.Rational]:
        """(B_0, B_{T−1}), B_τ = −Σ_{k≤τ} log(1 − β_k) = −log ᾱ_τ, as exact rationals of their
        70-digit values."""
        with mpmath.workdps(_DIGITS):
            logs = [-mpmath.log1p(-beta) for beta in self.betas()]
            return (sympy.Rational(sympy.Float(logs[0], _DIGITS)),
                    sympy.Rational(sympy.Float(mpmath.fsum(logs), _DIGITS)))

    def profile_integral(self, t: sympy.Expr) -> sympy.Expr:
        """I(t) = ∫₀ᵗ β̂(u) du."""
        a, c = self._profile_ends()
        if self.beta_schedule == "linear":
            return integrated_linear_beta(a, a + c, t)
        return a**2 * t + a * c * t**2 + c**2 * t**3 / 3

    def profile_integral_inverse(self, j: sympy.Expr) -> sympy.Expr:
        """The t ≥ 0 with I(t) = j, written without cancellation near t = 0: linear,
        t = 2j/(a + √(a² + 2cj)); scaled_linear, (a + ct)³ = a³ + 3cj, so with r = ∛(a³ + 3cj)
        t = (r − a)/c = 3j/(r² + ar + a²)."""
        a, c = self._profile_ends()
        if self.beta_schedule == "linear":
            return time_of_integrated_linear_beta(j, a, a + c)
        r = sympy.cbrt(a**3 + 3 * c * j)
        return 3 * j / (r**2 + a * r + a**2)

    def integrated_beta(self) -> sympy.Expr:
        """B(t) of the table's continuous schedule (module docstring), t ∈ [0, 1]."""
        first, last = self.integrated_beta_ends
        return first + (last - first) * self.profile_integral(T) / self.profile_integral(1)

    def time_of_integrated_beta(self, b: sympy.Expr) -> sympy.Expr:
        """t(B), the inverse of :meth:`integrated_beta`."""
        first, last = self.integrated_beta_ends
        return self.profile_integral_inverse((b - first) * self.profile_integral(1)
                                             / (last - first))
