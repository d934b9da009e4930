"""Note 001's KL bound, executable: score-matching loss with likelihood weighting versus the exact
KL of the sampler's output, for Gaussian data and an affine model score.

Note 001 ("使用 score matching 进行训练", after Song et al. 2021b, "Maximum likelihood training of
score-based diffusion models", Theorem 1) states, for the reverse SDE driven by s_θ and started
at π,

    KL(p_0 ‖ p_θ) ≤ (T/2) E_{t~U(0,T)} E_{p_t}[λ(t) ‖∇log p_t − s_θ‖²] + KL(p_T ‖ π),  λ = g².

Here the interval is the schedule's [t_min, T] (p_0 := p_{t_min}, the law samplers aim at), so
(T/2) E_{t~U} becomes ½ ∫_{t_min}^{T} dt. Data are N(μ, v₀) per coordinate (coordinates are
independent, so everything is a sum over them) and the model score is affine,
s_θ(x, t) = a(t) x + b(t): the reverse SDE (and the probability-flow ODE) driven by it is linear,
its output is Gaussian with moments solving

    SDE:  dm/du = −(f − g² a) m + g² b,    dv/du = −2 (f − g² a) v + g²,
    ODE:  dm/du = −(f − ½g² a) m + ½g² b,  dv/du = −2 (f − ½g² a) v,

in reverse time u = T − t from (m, v) = (0, s(T)² σ(T)²), the prior π = N(0, s_T² σ_T²) (the
kernel's noise alone). The left side is then a closed-form Gaussian KL; the loss integrates
E_{p_t}[(Δa x + Δb)²] = (Δa M + Δb)² + Δa² V over p_t = N(M, V), M = s μ, V = s²(v₀ + σ²).
Both are computed to ~1e-10 relative (scipy's DOP853 at rtol 1e-12, adaptive quadrature at
1e-11 relative or 1e-15 absolute, for losses that nearly vanish): far below every gap the tests
decide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.integrate import quad, solve_ivp

from sdebench.theory.numeric import lambdify
from sdebench.theory.schedule import Schedule

WEIGHTINGS = ("likelihood", "kernel_variance", "likelihood_without_half_t")
"""λ(t) of the loss: ``likelihood`` g² with the note's (T/2)·E_U factor (the bound);
``kernel_variance`` s²σ² (note 001's discrete-case choice "λ = σ_t²") with the same factor;
``likelihood_without_half_t`` g² with E_{t~U}[·] alone, i.e. (1/(T − t_min)) ∫ instead of ½ ∫."""


@dataclass(frozen=True)
class GaussianData:
    """N(mean, variance) per coordinate (arrays of equal length)."""

    mean: np.ndarray
    variance: np.ndarray

    def __post_init__(self):
        mean, variance = np.atleast_1d(np.asarray(self.mean, float)), np.atleast_1d(
            np.asarray(self.variance, float))
        if mean.shape != variance.shape or mean.ndim != 1:
            raise ValueError("mean and variance must be 1-D arrays of the same length")
        if not np.all(variance > 0):
            raise ValueError("variances must be positive")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "variance", variance)


@dataclass(frozen=True)
class AffineScore:
    """s_θ(x, t) = a(t) x + b(t): the true score of the data's p_t, a = −1/(s²(v₀ + σ²)),
    b = μ/(s(v₀ + σ²)), perturbed as a(1 + ε_a sin(ωτ + φ_a)) and
    b + ε_b sin(ωτ + φ_b)/(s√(v₀ + σ²)), τ = (t − t_min)/(T − t_min) ∈ [0, 1]; the
    perturbations are relative to the score's own scale. All zero: the exact score."""

    eps_a: float = 0.0
    eps_b: float = 0.0
    omega: float = 0.0
    phase_a: float = 0.0
    phase_b: float = 0.0


@dataclass(frozen=True)
class KLBound:
    """Both sides of the bound: ``kl`` = KL(p_0 ‖ p_θ), ``loss`` = the weighted score-matching
    term, ``prior_kl`` = KL(p_T ‖ π); ``rhs`` = loss + prior_kl; ``gap`` = rhs − kl."""

    kl: float
    loss: float
    prior_kl: float

    @property
    def rhs(self) -> float:
        return self.loss + self.prior_kl

    @property
    def gap(self) -> float:
        return self.rhs - self.kl


def gaussian_kl(mean_p, var_p, mean_q, var_q) -> float:
    """KL(N(mean_p, var_p) ‖ N(mean_q, var_q)) summed over coordinates:
    ½ Σ [ln(v_q/v_p) + (v_p + (m_p − m_q)²)/v_q − 1]."""
    return float(0.5 * np.sum(np.log(var_q / var_p) + (var_p + (mean_p - mean_q) ** 2) / var_q - 1))


class _Coefficients:
    """f, g², s, σ as NumPy functions of t (lambdified from the schedule: one source of truth),
    and the model score's a(t), b(t) and the true score's per coordinate."""

    def __init__(self, schedule: Schedule, data: GaussianData, score: AffineScore):
        self.f, self.g2, self.s, self.sigma = (lambdify(getattr(schedule, name), backend="numpy")
                                              for name in ("f", "g2", "s", "sigma"))
        self.t_min, self.t_max = float(schedule.t_min), float(schedule.t_max)
        self.data, self.score = data, score

    def true(self, t):
        s, sigma = self.s(np.float64(t)), self.sigma(np.float64(t))
        total = self.data.variance + sigma**2
        return -1 / (s**2 * total), self.data.mean / (s * total), s, total

    def model(self, t):
        a_true, b_true, s, total = self.true(t)
        tau = (t - self.t_min) / (self.t_max - self.t_min)
        p = self.score
        a = a_true * (1 + p.eps_a * math.sin(p.omega * tau + p.phase_a))
        b = b_true + p.eps_b * math.sin(p.omega * tau + p.phase_b) / (s * np.sqrt(total))
        return a, b


def output_law(schedule: Schedule, data: GaussianData, score: AffineScore,
               kind: str = "sde") -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the reverse SDE's (``sde``) or probability-flow ODE's (``ode``)
    output at t_min, driven by ``score`` from π = N(0, s_T² σ_T²) (module docstring)."""
    if kind not in ("sde", "ode"):
        raise ValueError(f"kind must be 'sde' or 'ode', got {kind!r}")
    c = _Coefficients(schedule, data, score)
    share = 1.0 if kind == "sde" else 0.5
    d = data.mean.size

    def rhs(u, y):
        t = c.t_max - u
        f, g2 = c.f(np.float64(t)), c.g2(np.float64(t))
        a, b = c.model(t)
        m, v = y[:d], y[d:]
        rate = f - share * g2 * a
        noise = g2 if kind == "sde" else 0.0
        return np.concatenate([-rate * m + share * g2 * b, -2 * rate * v + noise])

    prior_var = float(c.s(np.float64(c.t_max)) * c.sigma(np.float64(c.t_max))) ** 2
    y0 = np.concatenate([np.zeros(d), np.full(d, prior_var)])
    solution = solve_ivp(rhs, (0.0, c.t_max - c.t_min), y0, method="DOP853", rtol=1e-12,
                         atol=1e-14 * max(1.0, prior_var))
    if not solution.success:
        raise RuntimeError(f"moment ODE failed on {schedule.name}: {solution.message}")
    return solution.y[:d, -1], solution.y[d:, -1]


def score_matching_loss(schedule: Schedule, data: GaussianData, score: AffineScore,
                        weighting: str = "likelihood") -> float:
    """The loss term of the bound for weighting λ (:data:`WEIGHTINGS`): ½ ∫ λ(t) E_{p_t}‖Δ‖² dt
    with Δ = ∇log p_t − s_θ, or (1/(T − t_min)) ∫ for ``likelihood_without_half_t``."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    c = _Coefficients(schedule, data, score)

    def integrand(t):
        a_true, b_true, s, total = c.true(t)
        a, b = c.model(t)
        mean, var = s * data.mean, s**2 * total
        error = float(np.sum(((a_true - a) * mean + (b_true - b)) ** 2 + (a_true - a) ** 2 * var))
        weight = float(c.s(np.float64(t)) * c.sigma(np.float64(t))) ** 2 \
            if weighting == "kernel_variance" else float(c.g2(np.float64(t)))
        return weight * error

    # split at the quartiles of τ so the adaptive rule sees the oscillation of the perturbation
    edges = np.linspace(c.t_min, c.t_max, 9)
    total = sum(quad(integrand, lo, hi, epsabs=1e-15, epsrel=1e-11, limit=400)[0]
                for lo, hi in zip(edges[:-1], edges[1:], strict=True))
    factor = 1 / (c.t_max - c.t_min) if weighting == "likelihood_without_half_t" else 0.5
    return factor * total


def kl_bound(schedule: Schedule, data: GaussianData, score: AffineScore, *, kind: str = "sde",
             weighting: str = "likelihood") -> KLBound:
    """Both sides of note 001's bound for the ``kind`` sampler (see :class:`KLBound`).

    Not for a schedule with a pure-noise end (rf, vp0snr): there f and g² are infinite at t_max
    and ∫ g² dt diverges (rf: g² = 2t/(1 − t)), so the moment ODE of the reverse SDE cannot be
    started at t_max; the learned-score study (sdebench.studies.learned) evaluates the loss term,
    whose integrand g² e(t) does tend to 0 there."""
    if schedule.pure_noise_end:
        raise ValueError(f"kl_bound: {schedule.name!r} starts at pure noise (s = 0 at t_max), where "
                         "f and g^2 are infinite and the reverse SDE's moment ODE cannot start")
    c = _Coefficients(schedule, data, score)
    mean, var = output_law(schedule, data, score, kind)
    s_min, sigma_min = c.s(np.float64(c.t_min)), c.sigma(np.float64(c.t_min))
    kl = gaussian_kl(s_min * data.mean, s_min**2 * (data.variance + sigma_min**2), mean, var)
    s_max, sigma_max = c.s(np.float64(c.t_max)), c.sigma(np.float64(c.t_max))
    prior_kl = gaussian_kl(s_max * data.mean, s_max**2 * (data.variance + sigma_max**2),
                           np.zeros_like(data.mean), np.full_like(data.variance,
                                                                  (s_max * sigma_max) ** 2))
    return KLBound(kl, score_matching_loss(schedule, data, score, weighting), prior_kl)
