"""The Gaussian perturbation kernel ``x_t = s(t) x_0 + s(t) σ(t) ε`` and what follows from it.

Karras et al. 2022 (EDM), eq. 4 and Appendix B.2: every linear forward SDE
``dx = f(t) x dt + g(t) dw`` has this kernel with

    f = ṡ / s,        g² = 2 s² σ̇ σ,

(note 003, "Perturbing Data with SDEs"). In the (ᾱ, β̄) notation of note 004 the kernel is
``N(√ᾱ x_0, β̄ I)`` with ᾱ = s² and β̄ = s² σ².

Beware that the notes use σ for two different things: here σ is the noise level of the *scaled*
variable ``x/s`` (EDM's σ); the standard deviation of the kernel itself is ``s σ``.
"""

from __future__ import annotations

from functools import cached_property

import sympy

T = sympy.Symbol("t", real=True)
"""The time variable of every schedule."""


def drift_coefficient(s: sympy.Expr) -> sympy.Expr:
    """f(t) = ṡ/s (EDM eq. 4; note 003)."""
    return sympy.diff(s, T) / s


def diffusion_squared(s: sympy.Expr, sigma: sympy.Expr) -> sympy.Expr:
    """g(t)² = 2 s² σ̇ σ (EDM eq. 4; note 003)."""
    return 2 * s**2 * sympy.diff(sigma, T) * sigma


class Kernel:
    """A perturbation kernel given by SymPy expressions ``s(t)`` and ``σ(t)`` in :data:`T`.

    No validity checks: use :class:`theory.schedule.Schedule` for concrete schedules. A kernel
    with undefined functions (:func:`generic_kernel`) proves claims for *all* schedules at once.
    """

    def __init__(self, s: sympy.Expr, sigma: sympy.Expr, name: str = "kernel"):
        self.s = sympy.sympify(s)
        self.sigma = sympy.sympify(sigma)
        self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, s={self.s}, sigma={self.sigma})"

    @cached_property
    def ds(self) -> sympy.Expr:
        """ṡ = ds/dt."""
        return sympy.diff(self.s, T)

    @cached_property
    def dsigma(self) -> sympy.Expr:
        """σ̇ = dσ/dt."""
        return sympy.diff(self.sigma, T)

    @cached_property
    def f(self) -> sympy.Expr:
        """Drift coefficient f = ṡ/s of ``dx = f x dt + g dw``."""
        return drift_coefficient(self.s)

    @cached_property
    def g2(self) -> sympy.Expr:
        """Squared diffusion coefficient g² = 2 s² σ̇ σ."""
        return diffusion_squared(self.s, self.sigma)

    @cached_property
    def g(self) -> sympy.Expr:
        """Diffusion coefficient g = s √(2 σ̇ σ)."""
        return self.s * sympy.sqrt(2 * self.dsigma * self.sigma)

    @cached_property
    def kernel_std(self) -> sympy.Expr:
        """Standard deviation of x_t given x_0: s σ."""
        return self.s * self.sigma

    @cached_property
    def alpha_bar(self) -> sympy.Expr:
        """Note 004's ᾱ_t = s² (kernel mean is √ᾱ x_0)."""
        return self.s**2

    @cached_property
    def beta_bar(self) -> sympy.Expr:
        """Note 004's β̄_t = s² σ² (kernel variance)."""
        return self.s**2 * self.sigma**2

    @cached_property
    def pf_coefficients(self) -> tuple[sympy.Expr, sympy.Expr]:
        """(a_x, a_D) with the probability-flow drift f x − ½ g² ∇log p = a_x x + a_D x̂₀, written
        in s and the kernel's standard deviation sσ (DPM-Solver's α_t, σ_t; Lu et al. 2022, eq. 2.4):

            a_x = (sσ)˙/(sσ),      a_D = ṡ − s a_x,

        from f = ṡ/s, g² = 2s²σ̇σ and ∇log p = (s x̂₀ − x)/(s²σ²) (theory/tests/test_flow.py proves
        the two forms equal). This form stays finite where s → 0 and σ → ∞ with sσ finite (the
        pure-noise end of a flow schedule, where f and g² diverge)."""
        std = self.kernel_std
        a_x = sympy.diff(std, T) / std
        return a_x, self.ds - self.s * a_x

    @cached_property
    def half_log_snr(self) -> sympy.Expr:
        """λ(t) = −log σ(t), the time variable of DPM-Solver (Lu et al. 2022, eq. 3.3)."""
        return -sympy.log(self.sigma)


def generic_kernel() -> Kernel:
    """A kernel with undefined positive functions s(t), σ(t): proofs on it hold for every schedule."""
    s = sympy.Function("s", positive=True)(T)
    sigma = sympy.Function("sigma", positive=True)(T)
    return Kernel(s, sigma, name="generic")
