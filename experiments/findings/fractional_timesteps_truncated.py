"""Finding: with ``use_exponential_sigmas=True`` or ``use_beta_sigmas=True``, diffusers' schedulers
with integer timesteps (DPMSolverMultistep and Singlestep, DEIS, SA-Solver, UniPC,
DPMSolverMultistepInverse) truncate the fractional timesteps of their σ's to int64, so the network
is evaluated up to a table cell below the σ each step uses: the error stops falling.

Standalone (torch, numpy and diffusers only; not sdebench). Gaussian data x₀ ~ N(0, diag c) on the
default table (linear betas, T = 1000); the network is the exact ε-prediction ε = (x̃ − D(x̃; σ))/σ,
x̃ = x/√ᾱ, D = c/(c + σ²) x̃, at the σ of the timestep it is handed: log σ interpolated linearly
between the table's entries, the inverse of the schedulers' own ``_sigma_to_t``. Each output (at
σ_min, ``final_sigmas_type="sigma_min"``) is compared with the exact probability-flow solution from
the same start, x̃(σ) = √((c + σ²)/(c + σ₀²)) x̃(σ₀).

    python experiments/findings/fractional_timesteps_truncated.py   # exit 1 while present

Expected: DPM-Solver++(2M) converges at second order (Lu et al. 2022b, "DPM-Solver++", §4), its
network read at the σ each step uses. ``set_timesteps`` computes that σ's fractional timestep
with ``_sigma_to_t``; the ``use_karras_sigmas`` and ``use_lu_lambdas`` branches round it
(``.round()``), the exponential and beta branches do not, and ``torch.from_numpy(timesteps).to(
dtype=torch.int64)`` truncates it — always down, to a smaller σ. Euler, Heun, LMS, KDPM2 and
DPMSolverSDE keep their timesteps fractional (float) and are not affected. Measured: with the
exponential σ's the error stalls at 0.0095 from 128 steps; kept fractional it falls at order
1.9 (rounded as the Karras branch does, 1.5: half a cell of either sign remains).
"""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
VARIANCE = torch.tensor([0.1, 1.0, 4.0])
INTEGER_TIMESTEP_SCHEDULERS = ("DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler",
                               "DEISMultistepScheduler", "SASolverScheduler",
                               "UniPCMultistepScheduler", "DPMSolverMultistepInverseScheduler")
# the step counts of each option's comparison: where the stock error has reached its floor and
# the fractional one still falls (beta σ's take few steps at small σ, so they get there later)
STEPS = {"use_exponential_sigmas": (128, 512), "use_beta_sigmas": (512, 2048)}


def log_sigmas(scheduler) -> np.ndarray:
    """log σ_τ of the scheduler's table, σ_τ = √((1 − ᾱ_τ)/ᾱ_τ), in float64."""
    alphas_cumprod = scheduler.alphas_cumprod.double().numpy()
    return 0.5 * np.log((1 - alphas_cumprod) / alphas_cumprod)


def truncates(name: str, option: str) -> bool:
    """Whether the scheduler's timesteps are ⌊_sigma_to_t(σ)⌋ of its σ's and not their rounding."""
    import diffusers

    scheduler = getattr(diffusers, name)(**{option: True})
    scheduler.set_timesteps(16)
    fractional = scheduler._sigma_to_t(scheduler.sigmas.double().numpy(), log_sigmas(scheduler))
    timesteps = scheduler.timesteps.double().numpy()
    return bool(np.isin(timesteps, np.floor(fractional)).all()
                and not np.isin(timesteps, np.round(fractional)).all())


def error(option: str, steps: int, timesteps: str) -> float:
    """Largest distance of DPMSolverMultistep's output to the exact ODE solution; ``timesteps``:
    "truncated" (as shipped), "rounded" or "fractional" (the patches)."""
    from diffusers import DPMSolverMultistepScheduler

    scheduler = DPMSolverMultistepScheduler(final_sigmas_type="sigma_min", **{option: True})
    scheduler.set_timesteps(steps)
    table = log_sigmas(scheduler)
    if timesteps != "truncated":
        fractional = scheduler._sigma_to_t(scheduler.sigmas[:-1].double().numpy(), table)
        scheduler.timesteps = torch.from_numpy(
            np.round(fractional) if timesteps == "rounded" else fractional)
        # rounded beta σ's may repeat the first timestep, which index_for_timestep would skip
        scheduler.set_begin_index(0)
    table = torch.from_numpy(table)
    x = start = torch.randn(16, 3, generator=torch.Generator().manual_seed(0))
    for timestep in scheduler.timesteps:
        tau = timestep.double()
        low = min(int(tau), len(table) - 2)
        sigma = torch.exp(torch.lerp(table[low], table[low + 1], tau - low))
        x_tilde = x * torch.sqrt(1 + sigma**2)
        epsilon = (x_tilde - VARIANCE / (VARIANCE + sigma**2) * x_tilde) / sigma
        x = scheduler.step(epsilon, timestep, x).prev_sample.double()
    sigma_start, sigma_end = float(scheduler.sigmas[0]), float(scheduler.sigmas[-1])
    exact = torch.sqrt((VARIANCE + sigma_end**2) / (VARIANCE + sigma_start**2)) \
        * start * math.sqrt(1 + sigma_start**2) / math.sqrt(1 + sigma_end**2)
    return float((x - exact).abs().max())


def main() -> int:
    from diffusers.utils import logging

    logging.set_verbosity_error()  # DPMSolverSinglestep's notice about lower_order_final
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    defect = False
    for option, steps in STEPS.items():
        truncating = [name for name in INTEGER_TIMESTEP_SCHEDULERS if truncates(name, option)]
        print(f"{option}: timesteps truncated to int64 in {', '.join(truncating) or 'none'}")
        for timesteps in ("truncated", "rounded", "fractional"):
            errors = [error(option, n, timesteps) for n in steps]
            order = math.log2(errors[0] / errors[1]) / math.log2(steps[1] / steps[0])
            stalls = order < 1  # second order is expected; the truncated error stalls (order ~0)
            defect |= stalls and timesteps == "truncated"
            label = {"truncated": "as shipped (truncated)", "rounded": "rounded (patch a)",
                     "fractional": "kept fractional (patch b)"}[timesteps]
            print(f"  DPMSolverMultistep, timesteps {label}: errors {errors[0]:.3g} at {steps[0]} "
                  f"steps, {errors[1]:.3g} at {steps[1]}; order {order:.2f} (expected 2; "
                  f"{'STALLS' if stalls else 'ok'})")
    print("defect present" if defect else "no defect: the error falls with the step count")
    return 1 if defect else 0


if __name__ == "__main__":
    sys.exit(main())
