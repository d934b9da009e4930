"""The score-error floor of a learned score: e(t) and the right side of note 001's KL bound.

For a network on a problem whose score is known (:class:`~sdebench.problems.model.
LearnedScoreProblem`), e(t) = E_{p_t}‖s_θ(x, t) − ∇log p_t(x)‖² at times spaced in log-SNR, from
exact samples of p_t; with x̂₀ the denoisers, s − ∇log p = (x̂₀_θ − x̂₀)/(sσ²) per sample (Tweedie,
∇log p_t = (s x̂₀ − x)/(s²σ²)). The loss term of the bound, ½ ∫ g²(t) e(t) dt (Song et al. 2021b,
Thm. 1; theory/kl_bound.py decides the bound itself), is integrated by the trapezoid rule in t
over those points, its standard error combined from theirs (independent samples per point; the
quadrature error is not in it). On a schedule with a pure-noise end (rf, vp0snr) λ = −∞ at t_max:
the times are then uniform in t, and at t_max, where g² = ∞ and e = 0, the integrand takes its
limit 0 (g² e = 2s⁴σ̇σ E‖Δx̂₀‖²/(sσ)⁴ → 0 as s → 0 with sσ finite). Samplers of a study start
from exact p_T samples, so the bound's KL(p_T ‖ π) is 0: ½∫g²e dt bounds KL(p_{t_min} ‖ p_θ) of
the reverse SDE driven by s_θ, the floor below which discretisation cannot bring its error.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from sdebench.seeding import generator
from sdebench.solvers.grids import log_snr_grid, uniform_t_grid

SCORE_ERROR_TIMES = 48
SCORE_ERROR_SAMPLES = 4096
SCORE_ERROR_NOTE = (f"{SCORE_ERROR_SAMPLES} exact samples of p_t at each of {SCORE_ERROR_TIMES} "
                    "times spaced in log-SNR; trapezoid rule in t")


def score_error_frame(problem, seed: int, times: int = SCORE_ERROR_TIMES,
                      samples: int = SCORE_ERROR_SAMPLES) -> pd.DataFrame:
    """One row per time: t, σ(t), g²(t), e(t) with its standard error, and (in every row) the
    bound's loss term ``bound`` = ½∫g²e dt with ``bound_stderr``."""
    schedule, truth = problem.schedule, problem.truth
    numeric = schedule.numeric
    grid = uniform_t_grid if schedule.pure_noise_end else log_snr_grid
    rows = []
    with torch.no_grad():
        for i, t in enumerate(grid(schedule, times - 1).flip(0)):
            x = truth.sample_marginal(t, samples, generator(seed, "score_error", i,
                                                            device=problem.device))
            s, std = float(numeric.s(t)), float(numeric.kernel_std(t))
            pure_noise = s == 0.0  # ŝ − ∇log p = s Δx̂₀/(sσ)² = 0 there
            difference = (problem.denoiser(x, t) - truth.denoiser(x, t)) * (s / std**2)
            squared = difference.double().pow(2).flatten(1).sum(1)
            rows.append({"t": float(t), "sigma": float(numeric.sigma(t)), "g2": float(numeric.g2(t)),
                         "score_error": float(squared.mean()),
                         "score_error_stderr": float(squared.std() / math.sqrt(samples)),
                         "pure_noise": pure_noise})
    frame = pd.DataFrame(rows)
    weights = np.zeros(len(frame))  # trapezoid weights in t
    steps = np.diff(frame.t.to_numpy())
    weights[:-1] += steps / 2
    weights[1:] += steps / 2
    # ½ w g²: at a pure-noise end the integrand's limit is 0 (module docstring), not ∞ · 0
    weighted = np.where(frame.pure_noise, 0.0, 0.5 * weights * frame.g2.to_numpy())
    frame["bound"] = float(np.sum(weighted * frame.score_error.to_numpy()))
    frame["bound_stderr"] = float(np.sqrt(np.sum((weighted * frame.score_error_stderr) ** 2)))
    return frame.drop(columns="pure_noise")
