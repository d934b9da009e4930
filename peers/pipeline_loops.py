"""The loops of diffusers' deprecated VE pipelines, for the schedulers that have no ``step`` loop.

``KarrasVeScheduler`` and ``ScoreSdeVeScheduler`` are driven by their pipelines
(``diffusers/pipelines/deprecated/stochastic_karras_ve`` and ``score_sde_ve``), whose loops call
scheduler methods other than ``step``; each function below is that loop, unchanged but for the
network, which is the problem's denoiser D(x̃; σ) on x̃ = x/s seen through the pipeline's
convention (its UNet's own input and output scalings, (x + 1)/2 and σ/2 for KarrasVe, belong to
that UNet and are left out). Every function takes (scheduler with its timesteps set, denoise,
state x̃, generator) and returns the state the pipeline decodes.
"""

from __future__ import annotations

import torch


def _sigma(value, like: torch.Tensor) -> torch.Tensor:
    """A scheduler's σ (a float32 tensor or a number) in the state's dtype and device."""
    return torch.as_tensor(value).to(like)


def karras_ve_loop(scheduler, denoise, x: torch.Tensor, generator) -> torch.Tensor:
    """``KarrasVePipeline.__call__`` (Karras et al. 2022, Alg. 2): at each σ_i of its schedule,
    churn to σ̂ = (1 + γ)σ_i with fresh noise (``add_noise_to_input``), an Euler step to σ_{i+1}
    and, unless σ_{i+1} = 0, the Heun correction (``step_correct``). Its model output is
    d = (x̂ − D(x̂; σ̂))/σ̂ negated, since ``step`` forms x̂₀ = x̂ + σ̂ · model_output."""

    def model_output(sample, sigma):
        sigma = _sigma(sigma, sample)
        return (denoise(sample, sigma) - sample) / sigma

    for t in scheduler.timesteps:
        sigma = scheduler.schedule[t]
        sigma_prev = scheduler.schedule[t - 1] if t > 0 else 0
        sample_hat, sigma_hat = scheduler.add_noise_to_input(x, sigma, generator=generator)
        output = scheduler.step(model_output(sample_hat, sigma_hat), sigma_hat, sigma_prev,
                                sample_hat)
        if sigma_prev != 0:
            output = scheduler.step_correct(model_output(output.prev_sample, sigma_prev),
                                            sigma_hat, sigma_prev, sample_hat, output.prev_sample,
                                            output.derivative)
        x = output.prev_sample
    return x


def score_sde_ve_loop(scheduler, denoise, x: torch.Tensor, generator) -> torch.Tensor:
    """``ScoreSdeVePipeline.__call__`` with ``correct_steps = 0`` (Song et al. 2021, Alg. 2
    without its corrector): the reverse-diffusion predictor ``step_pred``, x ← x + (σ_i² −
    σ_{i−1}²) ∇log p(x; σ_i) + √(σ_i² − σ_{i−1}²) z on its geometric σ's, the last step to
    σ = 0; the pipeline returns that step's mean x + σ_min² ∇log p, Tweedie's denoiser. The
    network is called with the pipeline's ``sigmas[i]`` (σ_min (σ_max/σ_min)^{t_i}) and returns
    the score (D(x; σ) − x)/σ². (Its corrector is refused: :func:`sdebench.peers.diffusers.
    _score_sde_ve_refusal`.)"""
    scheduler.set_sigmas(len(scheduler.timesteps))
    sample_mean = x
    for i, t in enumerate(scheduler.timesteps):
        sigma = _sigma(scheduler.sigmas[i], x)
        score = (denoise(x, sigma) - x) / sigma**2
        output = scheduler.step_pred(score, t, x, generator=generator)
        x, sample_mean = output.prev_sample, output.prev_sample_mean
    return sample_mean
