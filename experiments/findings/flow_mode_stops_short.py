"""Finding: diffusers' DEISMultistepScheduler and SASolverScheduler with ``use_flow_sigmas=True``
never reach σ_f = 0: the decoded sample keeps noise of level (1 − 1/T)/N, a first-order error.

Standalone (torch and diffusers only; not sdebench). Rectified flow x_f = (1 − σ) x₀ + σ ε on
Gaussian data; the network is the exact velocity v = (x_f − E[x₀ | x_f])/σ at σ = timestep/T.

    python experiments/findings/flow_mode_stops_short.py   # exit 1 while the defect is present

Expected: a flow pipeline decodes the scheduler's last state as the sample, so the grid must end
at σ_f = 0, as DPMSolverMultistep's and UniPC's do (their ``final_sigmas_type="zero"``). In the
``use_flow_sigmas`` branch of ``set_timesteps`` DEIS and SA-Solver append their last σ_f again
(``sigmas[-1:]``), a zero-length last step: the output stays at σ_f = (1 − 1/T)/N (0.12 at 8
steps; 0.30 with flow_shift = 3). Its distance to the data is then ~ σ_f: first order in N
whatever ``solver_order``. The minimal patch appends 0 instead (a last step to σ_f = 0).
"""

from __future__ import annotations

import sys

import torch

torch.set_default_dtype(torch.float64)
MEAN = torch.tensor([0.5, -1.0, 0.2])
VARIANCE = torch.tensor([0.1, 1.0, 4.0])
STEPS = (8, 32, 128)


def posterior_mean(x, sigma):
    """E[x₀ | (1 − σ) x₀ + σ ε = x] for x₀ ~ N(MEAN, diag VARIANCE)."""
    gain = VARIANCE * (1 - sigma) / ((1 - sigma) ** 2 * VARIANCE + sigma**2)
    return MEAN + gain * (x - (1 - sigma) * MEAN)


def data_error(scheduler, steps: int) -> tuple[float, float]:
    """(its last σ_f, the largest distance of its output to the exact ODE solution at σ_f = 0
    from the same start points)."""
    scheduler.set_timesteps(steps)
    sigma_start = scheduler.sigmas[0].double()
    std_start = torch.sqrt((1 - sigma_start) ** 2 * VARIANCE + sigma_start**2)
    x = start = (1 - sigma_start) * MEAN + std_start * torch.randn(
        16, 3, generator=torch.Generator().manual_seed(0))
    train_steps = scheduler.config.num_train_timesteps
    for timestep in scheduler.timesteps:
        sigma = timestep.double() / train_steps
        x = scheduler.step((x - posterior_mean(x, sigma)) / sigma, timestep, x).prev_sample
    exact = MEAN + torch.sqrt(VARIANCE) / std_start * (start - (1 - sigma_start) * MEAN)
    return float(scheduler.sigmas[-1]), float((x - exact).abs().max())


def main() -> int:
    from diffusers import DEISMultistepScheduler, DPMSolverMultistepScheduler, SASolverScheduler

    flow = {"use_flow_sigmas": True, "prediction_type": "flow_prediction"}
    schedulers = {
        "DEISMultistepScheduler": lambda: DEISMultistepScheduler(**flow),
        "SASolverScheduler (τ = 0: its ODE)": lambda: SASolverScheduler(
            tau_func=lambda t: 0, **flow),
        "DPMSolverMultistepScheduler (control)": lambda: DPMSolverMultistepScheduler(**flow)}
    defect = False
    for name, make in schedulers.items():
        results = {n: data_error(make(), n) for n in STEPS}
        stops_short = any(last > 0 for last, _ in results.values())
        defect |= stops_short and "control" not in name
        print(f"{name}: " + "; ".join(f"{n} steps: last σ_f {last:.3g}, error to the data "
                                      f"{error:.3g}" for n, (last, error) in results.items())
              + (" — STOPS SHORT of σ_f = 0" if stops_short else " — ends at σ_f = 0"))
    print("defect present" if defect else "no defect: every grid ends at σ_f = 0")
    return 1 if defect else 0


if __name__ == "__main__":
    sys.exit(main())
