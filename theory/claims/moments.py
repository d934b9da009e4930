"""Claim 1: the kernel and the SDE agree through their moment equations.

Itô's lemma for ``dx = f x dt + g dw`` gives dm/dt = f m and dv/dt = 2 f v + g² (note 002, §3;
Särkkä & Solin 2019, eq. 5.51). The kernel has m = s μ and v = s²(v₀ + σ²) for data N(μ, v₀).
Note 004 writes the same in ᾱ = s², β̄ = s²σ²: f = d ln √ᾱ/dt, g² = ᾱ d(β̄/ᾱ)/dt; note 002 states
the linear-SDE form dm/dt = A m + b, dP/dt = A P + P Aᵀ + Q, here with A = f I, b = 0, Q = g² I.
"""

from __future__ import annotations

import sympy

from sdebench.theory.claims.common import MU, V0
from sdebench.theory.kernel import Kernel, T


def kernel_mean_ode_residual(kernel: Kernel) -> sympy.Expr:
    """d(s μ)/dt − f (s μ)."""
    mean = kernel.s * MU
    return sympy.diff(mean, T) - kernel.f * mean


def kernel_variance_ode_residual(kernel: Kernel) -> sympy.Expr:
    """dv/dt − (2 f v + g²) with v = s² (v₀ + σ²)."""
    variance = kernel.s**2 * (V0 + kernel.sigma**2)
    return sympy.diff(variance, T) - (2 * kernel.f * variance + kernel.g2)


def alpha_beta_drift_residual(kernel: Kernel) -> sympy.Expr:
    """f − d(ln √ᾱ)/dt (note 004, §1(5))."""
    return kernel.f - sympy.diff(sympy.log(sympy.sqrt(kernel.alpha_bar)), T)


def alpha_beta_diffusion_residual(kernel: Kernel) -> sympy.Expr:
    """g² − ᾱ d(β̄/ᾱ)/dt (note 004, §1(5))."""
    return kernel.g2 - kernel.alpha_bar * sympy.diff(kernel.beta_bar / kernel.alpha_bar, T)


def _initial_moments(dim: int):
    mean = sympy.Matrix(sympy.symbols(f"m_0:{dim}", real=True))
    entries = sympy.symbols(f"P_0:{dim * dim}", real=True)
    cov = sympy.Matrix(dim, dim, lambda i, j: entries[min(i, j) * dim + max(i, j)])
    return mean, cov


def linear_sde_mean_residual(kernel: Kernel, dim: int = 2) -> sympy.Matrix:
    """dm/dt − (A m + b) for m(t) = s m₀, A = f I, b = 0 (note 002, §3.3)."""
    m0, _ = _initial_moments(dim)
    mean = kernel.s * m0
    drift_matrix = kernel.f * sympy.eye(dim)
    return sympy.diff(mean, T) - drift_matrix * mean


def linear_sde_covariance_residual(kernel: Kernel, dim: int = 2) -> sympy.Matrix:
    """dP/dt − (A P + P Aᵀ + Q) for P(t) = s² (P₀ + σ² I), a full symmetric P₀ (note 002, §3.3)."""
    _, p0 = _initial_moments(dim)
    cov = kernel.s**2 * (p0 + kernel.sigma**2 * sympy.eye(dim))
    drift_matrix = kernel.f * sympy.eye(dim)
    noise = kernel.g2 * sympy.eye(dim)
    return sympy.diff(cov, T) - (drift_matrix * cov + cov * drift_matrix.T + noise)
