"""The leading global error of Euler–Maruyama (and Euler) on Gaussian data, derived.

For data N(μ, Σ) every eigen-direction (eigenvalue v₀, mean μ) is a scalar linear SDE whose
marginal p_t has mean M = s μ and variance V = s²(v₀ + σ²). The sampler family of note 004,

    dx = [f x − c g² ∇log p_t] dt + η g dw̄,   c = ½(1 + η²)

(η = 1 Anderson's reverse SDE, η = 0 the probability-flow ODE), stepped backward by Euler–Maruyama
with step h from a state with the exact moments (M, V) at t, leaves the local errors

    mean:      −½ h² (ḟ + f²) M,
    variance:  h² (b² V − ½ V̈),   b = f + c g²/V,

by Taylor expansion of M(t − h) and V(t − h): the O(h) terms cancel because Ṁ = f M and
V̇ = 2 f V + g². (The global error then has the form C h + O(h²) of Talay & Tubaro 1990,
"Expansion of the global error for numerical schemes solving SDEs"; here C is explicit.)
Each later step multiplies a mean error by (1 − h b) and a variance error by (1 − h b)²; since
∫ b dt = (1 − 2c) log s + c log V, the products from t down to t_e tend to

    K(t) = (s/s_e)^(2c − 1) (V_e/V)^c   (mean),   K²   (variance).

So on a grid t_0 > … > t_N = t_e the errors at t_e are Σ_n K(t_{n+1}) LE_n + O(h²): a first-order
term :func:`em_leading_error` evaluates, plus a remainder of order two.

A corollary explains why EM looks second order on VE (f = 0, c = 1): there the mean is exact and
K² (b²V − ½V̈) = −½ V_e² d/dt(V̇/V²) is a total derivative, so on a grid uniform in t (for the
geometric VE schedule the log-SNR grid is one) the first-order coefficient is a boundary term,

    N · (variance error) → −½ (t_max − t_e) V_e² [V̇/V²]_{t_e}^{t_max},

which is tiny whenever σ_min² ≪ v₀ ≪ σ_max²: the O(h²) term then dominates up to thousands of
steps (about 10⁴ on the d = 4 test problem of tests/test_em_error_expansion.py).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import sympy

from sdebench.theory.claims.common import MU, V0
from sdebench.theory.kernel import Kernel, T, generic_kernel
from sdebench.theory.numeric import lambdify

STEP = sympy.Symbol("h", positive=True)
ETA = sympy.Symbol("eta", nonnegative=True)


def drift_weight(noise_scale) -> sympy.Expr:
    """c = ½(1 + η²): the weight of −g²∇log p_t in the drift of the SDE family (note 004)."""
    return (1 + sympy.nsimplify(noise_scale) ** 2) / 2


def _moments(kernel: Kernel) -> tuple[sympy.Expr, sympy.Expr]:
    """Exact marginal mean and variance along one eigen-direction: (s μ, s²(v₀ + σ²))."""
    return kernel.s * MU, kernel.s**2 * (V0 + kernel.sigma**2)


@dataclass(frozen=True)
class LocalErrorDensities:
    """SymPy expressions in t, v₀, μ: local errors per h² and the error propagator exponent."""

    mean: sympy.Expr
    variance: sympy.Expr
    log_propagator: sympy.Expr
    """−∫ b dt up to a constant: K(t) = exp(log_propagator(t) − log_propagator(t_e))."""
    rate: sympy.Expr
    """b = f + c g²/V, the rate at which later steps damp an error."""


def local_error_densities(kernel: Kernel, c=1) -> LocalErrorDensities:
    """The module docstring's local errors (divided by h²) for a kernel and drift weight c."""
    mean, variance = _moments(kernel)
    rate = kernel.f + c * kernel.g2 / variance
    return LocalErrorDensities(
        mean=-(sympy.diff(kernel.f, T) + kernel.f**2) * mean / 2,
        variance=rate**2 * variance - sympy.diff(variance, T, 2) / 2,
        log_propagator=-(1 - 2 * c) * sympy.log(kernel.s) - c * sympy.log(variance),
        rate=rate,
    )


@dataclass(frozen=True)
class LeadingError:
    """First-order errors at t_e, per eigen-direction, of the output mean and variance."""

    mean: np.ndarray
    variance: np.ndarray


def em_leading_error(kernel: Kernel, mean, eigenvalues, ts, noise_scale: float = 1.0
                     ) -> LeadingError:
    """Σ_n K(t_{n+1}) LE_n over the decreasing grid ``ts`` for data N(mean, diag(eigenvalues))
    in eigen-coordinates; the true error differs by O(h²) (module docstring)."""
    densities = local_error_densities(kernel, drift_weight(noise_scale))
    variables = (T, V0, MU)
    t = np.asarray(ts, dtype=float)[:, None]
    v0 = np.asarray(eigenvalues, dtype=float)[None, :]
    mu = np.asarray(mean, dtype=float)[None, :]
    if not (np.diff(t[:, 0]) < 0).all():
        raise ValueError("ts must be strictly decreasing")
    step = (t[:-1] - t[1:]) ** 2
    log_propagator = lambdify(densities.log_propagator, "numpy", variables)
    propagator = np.exp(log_propagator(t[1:], v0, mu) - log_propagator(t[-1:], v0, mu))
    mean_density = lambdify(densities.mean, "numpy", variables)(t[:-1], v0, mu)
    variance_density = lambdify(densities.variance, "numpy", variables)(t[:-1], v0, mu)
    return LeadingError(
        mean=np.sum(propagator * step * mean_density, axis=0),
        variance=np.sum(propagator**2 * step * variance_density, axis=0),
    )


def ve_variance_coefficient(kernel: Kernel, eigenvalues, t_min: float, t_max: float
                            ) -> np.ndarray:
    """lim N · (variance error) for f ≡ 0, c = 1 and a grid uniform in t:
    −½ (t_max − t_min) V_e² [V̇/V²]_{t_min}^{t_max} (the boundary term of the module docstring)."""
    if sympy.simplify(kernel.f) != 0:
        raise ValueError(f"the boundary-term formula needs f ≡ 0; {kernel.name} has f = {kernel.f}")
    variance = _moments(kernel)[1]
    boundary = lambdify(sympy.diff(variance, T) / variance**2, "numpy", (T, V0))
    final = lambdify(variance, "numpy", (T, V0))
    v0 = np.asarray(eigenvalues, dtype=float)
    return -0.5 * (t_max - t_min) * final(t_min, v0) ** 2 * (
        boundary(t_max, v0) - boundary(t_min, v0))


def one_step_residuals(kernel: Kernel) -> tuple[sympy.Expr, sympy.Expr]:
    """One EM step of size h from the exact moments at t, minus the second-order Taylor polynomial
    of the exact moments at t − h, minus h² × the local-error densities; η symbolic, c = ½(1+η²).
    Both vanish identically: the O(h) terms cancel and the h² terms are the densities.

    Expanded once on the generic kernel, then the schedule's s(t), σ(t) substituted: expanding
    a concrete schedule's residual takes minutes where s is a difference of exponentials
    (vp0snr)."""
    generic = generic_kernel()
    if kernel.s == generic.s and kernel.sigma == generic.sigma:
        return _one_step_residuals(generic)
    concrete = {generic.s: kernel.s, generic.sigma: kernel.sigma}
    return tuple(residual.subs(concrete).doit() for residual in _one_step_residuals(generic))


@functools.cache
def _one_step_residuals(kernel: Kernel) -> tuple[sympy.Expr, sympy.Expr]:
    mean, variance = _moments(kernel)
    densities = local_error_densities(kernel, drift_weight(ETA))
    em_mean = mean - STEP * kernel.f * mean
    em_variance = (1 - STEP * densities.rate) ** 2 * variance + ETA**2 * kernel.g2 * STEP

    def taylor(moment):
        return moment - STEP * sympy.diff(moment, T) + STEP**2 * sympy.diff(moment, T, 2) / 2

    return (sympy.expand(em_mean - taylor(mean) - STEP**2 * densities.mean),
            sympy.expand(em_variance - taylor(variance) - STEP**2 * densities.variance))


def propagator_residual(kernel: Kernel) -> sympy.Expr:
    """d/dt(log_propagator) + b, for symbolic η: zero when ∫ b dt = (1 − 2c) log s + c log V."""
    densities = local_error_densities(kernel, drift_weight(ETA))
    return sympy.diff(densities.log_propagator, T) + densities.rate


def total_derivative_residual(kernel: Kernel) -> sympy.Expr:
    """(variance density)/V² + ½ d/dt(V̇/V²) at c = 1: zero when f ≡ 0 (the VE corollary)."""
    variance = _moments(kernel)[1]
    density = local_error_densities(kernel).variance
    return density / variance**2 + sympy.diff(sympy.diff(variance, T) / variance**2, T) / 2
