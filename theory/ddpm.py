"""The discrete DDPM chain and its continuous limit, the VP SDE.

Ho et al. 2020, eq. 2 and §4: q(x_i | x_{i−1}) = N(√(1−β_i) x_{i−1}, β_i I), ᾱ_i = Π_{j≤i}(1−β_j),
with β linear from 10⁻⁴ to 0.02 over N = 1000 steps. Song et al. 2021, App. B: with
β_i = β̄_min/N + (i−1)(β̄_max − β̄_min)/(N(N−1)) the chain converges, as N → ∞, to the VP SDE with
β(t) = β̄_min + t(β̄_max − β̄_min), and ᾱ_i → s(i/N)² with error O(1/N).
"""

from __future__ import annotations

import mpmath
import sympy

from sdebench.theory.catalogue import vp_linear
from sdebench.theory.kernel import T
from sdebench.theory.schedule import Schedule, exact_number


class DDPMChain:
    """The discrete chain with N steps and continuous-limit constants β̄_min, β̄_max."""

    def __init__(self, steps: int = 1000, beta_bar_min=sympy.Rational(1, 10), beta_bar_max=20):
        if int(steps) != steps or steps < 2:
            raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
        self.steps = int(steps)
        self.beta_bar_min = exact_number(beta_bar_min)
        self.beta_bar_max = exact_number(beta_bar_max)

    def beta(self, i: int) -> sympy.Rational:
        """β_i, i = 1..N (exact rational)."""
        n = self.steps
        return self.beta_bar_min / n + (i - 1) * (self.beta_bar_max - self.beta_bar_min) / (
            n * (n - 1)
        )

    def alpha_bar(self, digits: int = 30) -> list[mpmath.mpf]:
        """[ᾱ_1, …, ᾱ_N] in mpmath at ``digits`` significant digits."""
        with mpmath.workdps(digits):
            values, product = [], mpmath.mpf(1)
            for i in range(1, self.steps + 1):
                product *= 1 - mpmath.mpf(self.beta(i))
                values.append(+product)
        return values

    def continuous_limit(self) -> Schedule:
        """The VP SDE this chain discretises (Song et al. 2021, eq. 11)."""
        return vp_linear(self.beta_bar_min, self.beta_bar_max)

    def limit_error(self, digits: int = 30) -> mpmath.mpf:
        """max_i |ᾱ_i − s(i/N)²| where s is the continuous limit's kernel mean."""
        s_squared = sympy.lambdify(T, self.continuous_limit().alpha_bar, "mpmath")
        with mpmath.workdps(digits):
            return max(
                abs(value - s_squared(mpmath.mpf(i) / self.steps))
                for i, value in enumerate(self.alpha_bar(digits), start=1)
            )
