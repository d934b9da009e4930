"""Note 002 §7.2: the DDPM ELBO decomposes into ε-prediction MSE terms — with weights.

For the chain q(x_t|x_{t−1}) = N(√α_t x_{t−1}, β_t), α_t = 1 − β_t, ᾱ_t = α_t ᾱ_{t−1} (Ho et al.
2020, eqs. 2–4), one coordinate (every term is a sum over independent coordinates):

* the posterior q(x_{t−1}|x_t, x₀) = N(μ̃, β̃) with μ̃ = √ᾱ_{t−1}β_t/(1−ᾱ_t) x₀ +
  √α_t(1−ᾱ_{t−1})/(1−ᾱ_t) x_t and β̃ = (1−ᾱ_{t−1})β_t/(1−ᾱ_t) (eqs. 6–7), from Bayes' rule;
* with x₀ = (x_t − √(1−ᾱ_t) ε)/√ᾱ_t: μ̃ = (x_t − β_t ε/√(1−ᾱ_t))/√α_t (eq. 10), so the model mean
  μ_θ = (x_t − β_t ε_θ/√(1−ᾱ_t))/√α_t (eq. 11);
* the ELBO term L_{t−1} = KL(q(x_{t−1}|x_t, x₀) ‖ N(μ_θ, σ_t²)) =
  ½[β̃/σ_t² − 1 − ln(β̃/σ_t²)] + w_t (ε − ε_θ)², w_t = β_t²/(2σ_t² α_t (1 − ᾱ_t)) (eq. 12).

L_simple = E‖ε − ε_θ‖² (eq. 14; note 002's "equivalent MSE") drops w_t, which varies along the
chain: it is a reweighted objective with the same minimiser for a model free at each t, not the
ELBO (theory/ERRATA.md 16).
"""

from __future__ import annotations

import sympy

BETA = sympy.Symbol("beta_t", positive=True)
ABAR_PREV = sympy.Symbol("abar_prev", positive=True)
SIGMA2 = sympy.Symbol("sigma_t2", positive=True)
X0, XT, XPREV, EPS, EPS_THETA = sympy.symbols("x_0 x_t x_prev epsilon epsilon_theta", real=True)

ALPHA = 1 - BETA
ABAR = ALPHA * ABAR_PREV
POSTERIOR_MEAN = (sympy.sqrt(ABAR_PREV) * BETA / (1 - ABAR) * X0
                  + sympy.sqrt(ALPHA) * (1 - ABAR_PREV) / (1 - ABAR) * XT)
POSTERIOR_VARIANCE = (1 - ABAR_PREV) * BETA / (1 - ABAR)
ELBO_WEIGHT = BETA**2 / (2 * SIGMA2 * ALPHA * (1 - ABAR))


def _log_normal(x, mean, variance):
    return -(x - mean) ** 2 / (2 * variance) - sympy.log(2 * sympy.pi * variance) / 2


def posterior_residuals() -> tuple[sympy.Expr, sympy.Expr]:
    """Bayes: ln q(x_t|x_{t−1}) + ln q(x_{t−1}|x₀) − ln q(x_{t−1}|x_t, x₀) must not depend on
    x_{t−1}; its first and second derivatives in x_{t−1} (both must vanish)."""
    joint = (_log_normal(XT, sympy.sqrt(ALPHA) * XPREV, BETA)
             + _log_normal(XPREV, sympy.sqrt(ABAR_PREV) * X0, 1 - ABAR_PREV)
             - _log_normal(XPREV, POSTERIOR_MEAN, POSTERIOR_VARIANCE))
    return sympy.diff(joint, XPREV), sympy.diff(joint, XPREV, 2)


def _x0_from_eps(eps):
    return (XT - sympy.sqrt(1 - ABAR) * eps) / sympy.sqrt(ABAR)


def eps_mean(eps) -> sympy.Expr:
    """(x_t − β_t ε/√(1−ᾱ_t))/√α_t (Ho et al. eq. 10/11)."""
    return (XT - BETA * eps / sympy.sqrt(1 - ABAR)) / sympy.sqrt(ALPHA)


def posterior_mean_in_eps_residual() -> sympy.Expr:
    """μ̃(x_t, x₀(x_t, ε)) − (x_t − β_t ε/√(1−ᾱ_t))/√α_t."""
    return POSTERIOR_MEAN.subs(X0, _x0_from_eps(EPS)) - eps_mean(EPS)


def elbo_term(eps_theta=EPS_THETA) -> sympy.Expr:
    """KL(N(μ̃, β̃) ‖ N(μ_θ, σ_t²)) with μ̃ written in ε and μ_θ in ε_θ."""
    ratio = POSTERIOR_VARIANCE / SIGMA2
    return (ratio - 1 - sympy.log(ratio)) / 2 + (eps_mean(EPS) - eps_mean(eps_theta)) ** 2 / (
        2 * SIGMA2)


def elbo_as_weighted_eps_mse_residual() -> sympy.Expr:
    """L_{t−1} − [½(β̃/σ² − 1 − ln β̃/σ²) + w_t (ε − ε_θ)²] (Ho et al. eq. 12)."""
    ratio = POSTERIOR_VARIANCE / SIGMA2
    return elbo_term() - ((ratio - 1 - sympy.log(ratio)) / 2 + ELBO_WEIGHT * (EPS - EPS_THETA) ** 2)


def chain_weights(betas, sigma2: str = "beta") -> list[float]:
    """w_t for t = 2 … N of a chain (float64), σ_t² = β_t (``"beta"``) or β̃_t
    (``"posterior"``), Ho et al.'s two choices; t = 1 is the decoder term L₀."""
    weights, abar_prev = [], 1 - float(betas[0])
    for beta in betas[1:]:
        beta = float(beta)
        alpha, abar = 1 - beta, (1 - beta) * abar_prev
        variance = beta if sigma2 == "beta" else (1 - abar_prev) * beta / (1 - abar)
        weights.append(beta**2 / (2 * variance * alpha * (1 - abar)))
        abar_prev = abar
    return weights
