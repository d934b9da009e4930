"""Claim 10: the catalogue's derived coefficients equal the published closed forms.

Song et al. 2021 (ICLR), eq. 9, 11, 29 and App. B–C: VP f = −½β, g² = β; sub-VP f = −½β,
g² = β(1 − e^{−2∫β}); VE f = 0, g = σ_min (σ_max/σ_min)ᵗ √(2 log(σ_max/σ_min)).
Karras et al. 2022, Table 1: VP σ(t) = √(e^{½β_d t² + β_min t} − 1), s(t) = 1/√(e^{½β_d t² + β_min t})
with β_d = 19.9, β_min = 0.1; EDM σ(t) = t, s(t) = 1. Nichol & Dhariwal 2021, eq. 17: ᾱ(t) =
cos²(φ(t))/cos²(φ(0)). Esser et al. 2024 (SD3), eq. 3: rectified flow z_t = (1 − t) x₀ + t ε.
Lin et al. 2024, Alg. 1: √ᾱ rescaled to (√ᾱ − √ᾱ_T) √ᾱ_0/(√ᾱ_0 − √ᾱ_T), here on the continuous
VP's ᾱ = e^{−B} (ᾱ_0 = 1), with ᾱ + β̄ = 1 (variance preserving). Ho et al. 2020, §2 and §4:
a discrete table has ᾱ_τ = Π_{k≤τ}(1 − β_k), β_k linear from 10⁻⁴ to 0.02 over T = 1000; the
table's continuous schedule equals it at τ = 0 and τ = T − 1 (the exact rational product, at 60
digits).
"""

from __future__ import annotations

import sympy

from sdebench.theory.catalogue import get_schedule
from sdebench.theory.kernel import T

_BETA_MIN, _BETA_MAX = sympy.Rational(1, 10), sympy.Integer(20)
_BETA = _BETA_MIN + T * (_BETA_MAX - _BETA_MIN)
_INTEGRATED_BETA = _BETA_MIN * T + (_BETA_MAX - _BETA_MIN) * T**2 / 2
_SIGMA_MIN, _SIGMA_MAX = sympy.Rational(1, 100), sympy.Integer(50)


def _edm_vp():
    exponent = sympy.Rational(199, 10) * T**2 / 2 + _BETA_MIN * T
    return sympy.sqrt(sympy.exp(exponent) - 1), 1 / sympy.sqrt(sympy.exp(exponent))


def _nichol_alpha_bar():
    c = sympy.Rational(8, 1000)
    phi = (T + c) / (1 + c) * sympy.pi / 2
    return sympy.cos(phi) ** 2 / sympy.cos(c / (1 + c) * sympy.pi / 2) ** 2


def _ddpm_betas():
    """β_1 … β_T of Ho et al. 2020, §4: linear from 10⁻⁴ to 0.02, T = 1000 (exact rationals)."""
    first, last = sympy.Rational(1, 10**4), sympy.Rational(2, 100)
    return [first + (last - first) * sympy.Rational(k, 999) for k in range(1000)]


def published_residuals(name: str) -> dict[str, sympy.Expr]:
    """Residuals ``derived − published`` for catalogue schedule ``name``."""
    schedule = get_schedule(name)
    if name == "vp":
        edm_sigma, edm_s = _edm_vp()
        return {
            "song_f": schedule.f - (-_BETA / 2),
            "song_g2": schedule.g2 - _BETA,
            "edm_sigma": schedule.sigma - edm_sigma,
            "edm_s": schedule.s - edm_s,
        }
    if name == "subvp":
        return {
            "song_f": schedule.f - (-_BETA / 2),
            "song_g2": schedule.g2 - _BETA * (1 - sympy.exp(-2 * _INTEGRATED_BETA)),
            "song_std": schedule.kernel_std - (1 - sympy.exp(-_INTEGRATED_BETA)),
        }
    if name == "ve":
        ratio = _SIGMA_MAX / _SIGMA_MIN
        return {
            "song_f": schedule.f,
            "song_g": schedule.g
            - _SIGMA_MIN * ratio**T * sympy.sqrt(2 * sympy.log(ratio)),
        }
    if name == "edm":
        return {"edm_sigma": schedule.sigma - T, "edm_s": schedule.s - 1}
    if name == "vp_cosine":
        return {"nichol_alpha_bar": schedule.alpha_bar - _nichol_alpha_bar()}
    if name == "rf":
        return {"esser_mean": schedule.s - (1 - T), "esser_std": schedule.kernel_std - T}
    if name == "vp0snr":
        root_alpha_bar, root_alpha_bar_end = sympy.exp(-_INTEGRATED_BETA / 2), sympy.exp(
            -_INTEGRATED_BETA.subs(T, 1) / 2)
        return {
            "lin_root_alpha_bar": schedule.s
            - (root_alpha_bar - root_alpha_bar_end) / (1 - root_alpha_bar_end),
            "variance_preserving": schedule.alpha_bar + schedule.beta_bar - 1,
        }
    if name == "table":
        return {"ho_first": schedule.alpha_bar.subs(T, 0) - (1 - _ddpm_betas()[0]),
                # the exact product has ~8000 digits: at 60 of them (the check is at 50)
                "ho_last": schedule.alpha_bar.subs(T, 1)
                - sympy.prod(1 - b for b in _ddpm_betas()).evalf(60),
                "variance_preserving": schedule.alpha_bar + schedule.beta_bar - 1}
    raise ValueError(f"no published form recorded for {name!r}")
