"""Finding: diffusers' IPNDMScheduler ("a fourth-order Improved Pseudo Linear Multistep
scheduler") converges at first order on data whose mean is not zero: its first step, from pure
noise (α = 0), takes x̂₀ = 0 instead of E[x₀].

Standalone (torch and diffusers only; not sdebench). Gaussian data x₀ ~ N(m, diag v); the
network is the exact v-prediction of its state x = α x₀ + σ ε (v = α ε − σ x₀, as its step
expects); each output is compared with the exact probability-flow solution from the same pure
noise, x₀ = m + √v ⊙ ε.

    python experiments/findings/ipndm_first_step.py   # exit 1 while the defect is present

Expected: fourth order (its docstring). Its step converts v to ε (ets = σ x + α v), extrapolates
ε by Adams–Bashforth and forms x̂₀ = (x − σ ε)/max(α, 1e-8). At its first timestep α = 0 (pure
noise) and x = ε, so x̂₀ = 0/1e-8 = 0, while the limit is E[x₀] = −v there: the first step lands
at α₁ · 0 + σ₁ ε instead of α₁ m + σ₁ ε, an O(α₁) = O(1/N) error carried to the end. With m = 0
nothing is lost, and the order rises toward 4 (the control below); the minimal patch, x̂₀ = −v
where α = 0 (x̂₀ = α x − σ v in general), restores it for m ≠ 0.
"""

from __future__ import annotations

import math
import sys

import torch

torch.set_default_dtype(torch.float64)
VARIANCE = torch.tensor([0.1, 1.0, 4.0])
STEPS = (64, 256)


def error(steps: int, mean: torch.Tensor, patched: bool) -> float:
    """Largest distance of IPNDM's output to the exact ODE solution from the same pure noise."""
    from diffusers import IPNDMScheduler

    scheduler = IPNDMScheduler()
    scheduler.set_timesteps(steps)
    x = noise = torch.randn(16, 3, generator=torch.Generator().manual_seed(0))
    for index, timestep in enumerate(scheduler.timesteps):
        alpha, sigma = scheduler.alphas[index].double(), scheduler.betas[index].double()
        gain = VARIANCE * alpha / (alpha**2 * VARIANCE + sigma**2)
        denoised = mean + gain * (x - alpha * mean)
        v = alpha * (x - alpha * denoised) / sigma - sigma * denoised
        stepped = scheduler.step(v, timestep, x).prev_sample
        if patched and float(alpha) == 0:  # x̂₀ = −v at pure noise, where ε = x
            stepped = scheduler.alphas[1].double() * -v + scheduler.betas[1].double() * x
        x = stepped
    return float((x - (mean + VARIANCE.sqrt() * noise)).abs().max())


def main() -> int:
    runs = {"as shipped, data mean (0.5, −1, 0.2)": (torch.tensor([0.5, -1.0, 0.2]), False),
            "as shipped, data mean 0 (control)": (torch.zeros(3), False),
            "first step x̂₀ = −v (the patch), data mean (0.5, −1, 0.2)":
                (torch.tensor([0.5, -1.0, 0.2]), True)}
    defect = False
    for name, (mean, patched) in runs.items():
        errors = [error(n, mean, patched) for n in STEPS]
        order = math.log2(errors[0] / errors[1]) / math.log2(STEPS[1] / STEPS[0])
        low = order < 2  # a fourth-order method measures well above 2 here (control: 3.5)
        defect |= low and not patched and bool(mean.any())
        print(f"IPNDMScheduler, {name}: errors {errors[0]:.3g} at {STEPS[0]} steps, "
              f"{errors[1]:.3g} at {STEPS[1]}; order {order:.2f} ({'LOW' if low else 'ok'})")
    print("defect present" if defect else "no defect: above second order")
    return 1 if defect else 0


if __name__ == "__main__":
    sys.exit(main())
