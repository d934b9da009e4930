"""Note 002 §7.2 decided: the DDPM ELBO is a *weighted* ε-MSE; L_simple reweights it
(theory/claims/elbo.py; theory/ERRATA.md 16)."""

import sympy
import torch

from sdebench.theory.claims import elbo
from sdebench.theory.ddpm import DDPMChain


def test_elbo_posterior_follows_from_bayes():
    for residual in elbo.posterior_residuals():
        assert sympy.simplify(residual) == 0


def test_elbo_posterior_mean_in_terms_of_eps():
    assert sympy.simplify(elbo.posterior_mean_in_eps_residual()) == 0


def test_elbo_term_is_a_weighted_eps_mse():
    assert sympy.simplify(elbo.elbo_as_weighted_eps_mse_residual()) == 0


def test_elbo_weight_negative_control():
    """An unweighted MSE in place of w_t (ε − ε_θ)² leaves a residual: the weight is not 1."""
    ratio = elbo.POSTERIOR_VARIANCE / elbo.SIGMA2
    unweighted = (ratio - 1 - sympy.log(ratio)) / 2 + (elbo.EPS - elbo.EPS_THETA) ** 2
    assert sympy.simplify(elbo.elbo_term() - unweighted) != 0


def _chain_betas():
    chain = DDPMChain()
    return [float(chain.beta(i)) for i in range(1, chain.steps + 1)]


def test_elbo_weights_vary_along_the_ddpm_chain():
    """Ho et al.'s chain (β linear 1e-4 … 0.02, N = 1000): w_t spans a factor of ~55 for
    σ² = β (0.27 at t = 2 down to 0.0102 at t = N) and ~120 for σ² = β̃, so dropping it
    (L_simple) changes the objective."""
    for sigma2 in ("beta", "posterior"):
        weights = torch.tensor(elbo.chain_weights(_chain_betas(), sigma2), dtype=torch.float64)
        assert float(weights.max() / weights.min()) > 40, sigma2


def test_l_simple_and_the_elbo_rank_models_differently():
    """Two imperfect ε-models on the chain (σ² = β): A errs by (ε − ε_θ)² = 2 at t = 2 only,
    B by 3 at t = N only. L_simple prefers A (2 < 3); the ELBO prefers B, since
    w_2 · 2 ≈ 0.55 > w_N · 3 ≈ 0.031. Same minimiser (zero error at every t), different
    rankings of what training actually reaches."""
    weights = elbo.chain_weights(_chain_betas(), "beta")
    simple = {"A": 2.0, "B": 3.0}
    elbo_excess = {"A": weights[0] * 2.0, "B": weights[-1] * 3.0}
    assert simple["A"] < simple["B"] and elbo_excess["A"] > 10 * elbo_excess["B"]
