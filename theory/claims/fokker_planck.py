"""Claims 2–5: Fokker–Planck and continuity equations for the forward SDE, Anderson's reverse
SDE, the probability-flow ODE and the whole family of SDEs with the same marginals.

For ``dx = b(x, t) dt + G(x, t) dw`` in one dimension the density obeys
∂p/∂t = −∂ₓ(b p) + ½ ∂ₓ²(G² p) (note 000, §2.2 and §4.1). A reverse-time process
(time τ = T − t) has ∂p/∂τ = −∂p/∂t, which is what "time-reversed Fokker–Planck" means below.
Every residual is written for a density ``p`` (Gaussian or mixture marginal from
:mod:`theory.claims.common`) and vanishes identically when the claim holds.
"""

from __future__ import annotations

import sympy

from sdebench.theory.claims.common import X, score
from sdebench.theory.kernel import Kernel, T


def _fokker_planck(p, drift, diffusion_sq, *, reverse: bool = False) -> sympy.Expr:
    """±∂ₜp + ∂ₓ(b p) − ½ ∂ₓ²(G² p): zero iff p solves the FP equation of (b, G) in forward
    time (``reverse=False``) or in reverse time τ = T − t (``reverse=True``)."""
    sign = -1 if reverse else 1
    return (
        sign * sympy.diff(p, T)
        + sympy.diff(drift * p, X)
        - sympy.diff(diffusion_sq * p, X, 2) / 2
    )


def forward_fokker_planck_residual(kernel: Kernel, p: sympy.Expr) -> sympy.Expr:
    """Claim 2: the kernel's marginal solves the FP equation of dx = f x dt + g dw."""
    return _fokker_planck(p, kernel.f * X, kernel.g2)


def reverse_sde_fokker_planck_residual(kernel: Kernel, p: sympy.Expr) -> sympy.Expr:
    """Claim 3 (Anderson 1982, eq. 3.12; note 000, §2.2): in reverse time the drift is
    −(f x − g² ∇log p) with diffusion g, and p_t solves its FP equation."""
    return _fokker_planck(p, -(kernel.f * X - kernel.g2 * score(p)), kernel.g2, reverse=True)


def probability_flow_continuity_residual(kernel: Kernel, p: sympy.Expr) -> sympy.Expr:
    """Claim 4 (Song et al. 2021, eq. 13; note 000, §4): ∂ₜp + ∂ₓ[(f x − ½ g² ∇log p) p] = 0."""
    return _fokker_planck(p, kernel.f * X - kernel.g2 * score(p) / 2, 0)


def sde_family_residual(kernel: Kernel, p: sympy.Expr, h2: sympy.Expr) -> sympy.Expr:
    """Claim 5, forward family: dx = [f x − ½(g² − h²) ∇log p] dt + h dw keeps the marginals for
    any h(t) (note 004, §2; Zhang & Chen 2023, eq. 5)."""
    return _fokker_planck(p, kernel.f * X - (kernel.g2 - h2) * score(p) / 2, h2)


def reverse_sde_family_residual(kernel: Kernel, p: sympy.Expr, h2: sympy.Expr) -> sympy.Expr:
    """Claim 5, reverse family: dx = [f x − ½(g² + h²) ∇log p] dt + h dw̄ run from T to 0;
    h = g is Anderson's reverse SDE, h = 0 the probability-flow ODE."""
    drift = -(kernel.f * X - (kernel.g2 + h2) * score(p) / 2)
    return _fokker_planck(p, drift, h2, reverse=True)


def note003_family_residual(kernel: Kernel, p: sympy.Expr, h2: sympy.Expr) -> sympy.Expr:
    """Negative control: note 003 writes the family's noise as ``½ h² ∇log p dw`` (a state-
    dependent diffusion G = ½ h² ∇log p). Its FP residual is *not* zero (see ERRATA.md)."""
    drift = kernel.f * X - (kernel.g2 - h2) * score(p) / 2
    diffusion_sq = (h2 * score(p) / 2) ** 2
    return _fokker_planck(p, drift, diffusion_sq)
