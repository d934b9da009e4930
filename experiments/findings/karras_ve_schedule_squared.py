"""Finding: diffusers' KarrasVeScheduler steps on σ_max² … σ_min² while its pipeline starts from
noise of standard deviation ``init_noise_sigma`` = σ_max: its ``schedule`` holds Karras et al.'s
VE times t_i, not σ(t_i) = √t_i, so a sample keeps about 1/σ_max of the data's spread.

Standalone (torch and diffusers only; not sdebench). The loop is KarrasVePipeline's (diffusers'
deprecated ``stochastic_karras_ve``: churn, Euler step, Heun correction) with ``s_churn=0``, so
it is deterministic and linear; the network is the exact denoiser of Gaussian data
x₀ ~ N(0, diag c), D(x; σ) = c/(c + σ²) x, as the model output (x̂ − D)/σ̂ negated that its ``step``
expects (x̂₀ = x̂ + σ̂ · model_output). Its pipeline's UNet scalings belong to that UNet and are
left out.

    python experiments/findings/karras_ve_schedule_squared.py   # exit 1 while present

Expected: a sample of the data law; as N → ∞ the loop solves the probability-flow ODE from
N(0, σ_max²) at σ_max down to σ_min, then an Euler step to 0 (x̂₀ = D(x; σ_min)): standard
deviation c/√(c + σ_min²) ≈ √c. The scheduler's docstring: "sigma_min: the minimum noise
magnitude", "sigma_max: the maximum noise magnitude"; its ``schedule`` attribute is commented
``# sigma(t_i)``.

Measured: ``set_timesteps`` sets schedule = σ_max² (σ_min²/σ_max²)^(i/(N−1)), Karras et al. 2022,
Table 1's VE time steps t_i (their σ(t) = √t). The pipeline steps them as σ's, from 10⁴ to 4·10⁻⁴
with the defaults, starting from noise of standard deviation init_noise_sigma = σ_max = 100: its
first steps read that noise as a state at σ = 10⁴, 100 times too small, and the sample's standard
deviation is 0.0100 √c. Patch: σ(t_i) = √t_i, schedule = σ_max (σ_min/σ_max)^(i/(N−1)).
"""

from __future__ import annotations

import sys

import torch

torch.set_default_dtype(torch.float64)
VARIANCE = torch.tensor([0.1, 1.0, 4.0])
STEPS = (32, 128, 512)


def karras_ve_pipeline_loop(scheduler, x: torch.Tensor) -> torch.Tensor:
    """KarrasVePipeline.__call__'s loop from the initial sample x."""
    generator = torch.Generator().manual_seed(0)

    def model_output(sample, sigma):
        return (VARIANCE / (VARIANCE + sigma**2) * sample - sample) / sigma

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


def output_std(steps: int, patched: bool) -> tuple[torch.Tensor, float]:
    """(the sample's standard deviation per coordinate, the schedule's first σ): the loop is
    linear, x_out = a ⊙ x_start, so from x_start ~ N(0, init_noise_sigma²) it is
    |a| · init_noise_sigma, a from one run on x_start = 1."""
    from diffusers.schedulers.deprecated.scheduling_karras_ve import KarrasVeScheduler

    scheduler = KarrasVeScheduler(s_churn=0)
    scheduler.set_timesteps(steps)
    if patched:
        scheduler.schedule = scheduler.schedule.double().sqrt()
    gain = karras_ve_pipeline_loop(scheduler, torch.ones(1, 3))[0].abs()
    return gain * scheduler.init_noise_sigma, float(scheduler.schedule[steps - 1])


def main() -> int:
    sigma_min = 0.02  # the scheduler's default, as its σ_max = 100
    expected = VARIANCE / (VARIANCE + sigma_min**2).sqrt()
    print(f"expected standard deviation (N → ∞): c/√(c + σ_min²) = "
          f"{', '.join(f'{v:.4f}' for v in expected)}")
    defect = False
    for patched in (False, True):
        for steps in STEPS:
            std, first = output_std(steps, patched)
            ratio = std / expected
            collapsed = bool((ratio < 0.5).any())  # Heun at these N errs by well under 1%
            defect |= collapsed and not patched
            print(f"KarrasVe, {'schedule √t_i (patch)' if patched else 'as shipped'}, {steps} "
                  f"steps: starts at σ = {first:.6g} from noise of std init_noise_sigma = 100; "
                  f"sample std / expected {', '.join(f'{r:.4f}' for r in ratio)}"
                  f"{' (COLLAPSED)' if collapsed else ''}")
    print("defect present" if defect else "no defect: the sample has the data's spread")
    return 1 if defect else 0


if __name__ == "__main__":
    sys.exit(main())
