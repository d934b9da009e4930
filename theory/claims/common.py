"""Symbols, exact marginal densities and sampling ranges shared by the claims.

Data are one-dimensional: the kernels are isotropic, so every claim separates over the
eigen-coordinates of a Gaussian, and a two-component mixture already has a non-linear score.
"""

from __future__ import annotations

import sympy

from sdebench.theory.kernel import Kernel, T
from sdebench.theory.schedule import Schedule

X = sympy.Symbol("x", real=True)
MU, MU2 = sympy.symbols("mu mu_2", real=True)
V0, V2 = sympy.symbols("v_0 v_2", positive=True)
WEIGHT = sympy.Symbol("w", positive=True)
H2 = sympy.Function("h2", positive=True)(T)
"""An arbitrary positive function h(t)² (the free diffusion of the SDE family, note 003/004)."""


def gaussian_marginal(kernel: Kernel, mu: sympy.Expr = MU, v0: sympy.Expr = V0) -> sympy.Expr:
    """p_t(x) = N(x; s μ, s² (v₀ + σ²)) for data N(μ, v₀)."""
    variance = kernel.s**2 * (v0 + kernel.sigma**2)
    return sympy.exp(-((X - kernel.s * mu) ** 2) / (2 * variance)) / sympy.sqrt(
        2 * sympy.pi * variance
    )


def mixture_marginal(kernel: Kernel) -> sympy.Expr:
    """p_t for data w N(μ, v₀) + (1 − w) N(μ₂, v₂): a marginal with a non-linear score."""
    return WEIGHT * gaussian_marginal(kernel) + (1 - WEIGHT) * gaussian_marginal(kernel, MU2, V2)


DATA = {"gaussian": gaussian_marginal, "mixture": mixture_marginal}


def score(density: sympy.Expr) -> sympy.Expr:
    """∇ₓ log p = p′/p (kept as a quotient so that (∇log p) p cancels to p′ exactly)."""
    return sympy.diff(density, X) / density


def sampling_ranges(kernel: Kernel) -> dict:
    """Intervals for random evaluation points of :func:`theory.verify.prove_zero`."""
    if isinstance(kernel, Schedule):
        t_range = (float(kernel.t_min), float(kernel.t_max))
    else:
        t_range = (0.1, 1.0)
    return {
        T: t_range,
        X: (-3.0, 3.0),
        MU: (-2.0, 2.0),
        MU2: (-2.0, 2.0),
        V0: (0.1, 2.0),
        V2: (0.1, 2.0),
        WEIGHT: (0.1, 0.9),
    }


def concrete_h2(kernel: Kernel) -> sympy.Expr:
    """h(t)²: undefined for the generic kernel, an arbitrary positive function for schedules."""
    return H2 if not isinstance(kernel, Schedule) else (1 + T**2) / 3
