"""Finding: diffusers' DEISMultistepScheduler(solver_order=3) stops converging — its error grows
with the step count — because its coefficients cancel catastrophically in float32.

Standalone (torch and diffusers only; not sdebench). Gaussian data, the exact ε-network of the
scheduler's own table ᾱ_τ; each output is compared with the exact probability-flow ODE solution
of its own start points (the same quantile at the final σ).

    python experiments/findings/deis_3_float32_coefficients.py   # exit 1 while present

Expected: third order (Zhang & Chen 2023, DEIS), so the error falls ~64× from 128 to 512 steps.
The third-order step's coefficients are differences ∫ρ_s→ρ_t of the Lagrange basis in log ρ,
computed as F(ρ_t) − F(ρ_s) with an antiderivative F of size O(ρ/h²) (h the step in log ρ) whose
difference is O(ρh): a relative h³ survives the subtraction, and with float32 σ's (``sigmas``) a
relative u/h³ of the coefficient is lost — an error u/h² per step that grows like N². Computing
the same formula from float64 σ's (the minimal patch: ``self.sigmas`` in float64, or the
coefficients in float64) restores third order.
"""

from __future__ import annotations

import sys

import torch

torch.set_default_dtype(torch.float64)
MEAN = torch.tensor([0.5, -1.0, 0.2])
VARIANCE = torch.tensor([0.1, 1.0, 4.0])
STEPS = (128, 512)


def run(steps: int, float64_sigmas: bool) -> float:
    """Largest error of DEIS-3 against the exact ODE solution after ``steps`` steps."""
    from diffusers import DEISMultistepScheduler

    scheduler = DEISMultistepScheduler(solver_order=3)
    scheduler.set_timesteps(steps)
    if float64_sigmas:
        scheduler.sigmas = scheduler.sigmas.double()
    alphas_cumprod = scheduler.alphas_cumprod.double()

    def marginal_std(alpha_cumprod):
        return torch.sqrt(alpha_cumprod * VARIANCE + 1 - alpha_cumprod)

    first = int(scheduler.timesteps[0])
    x = torch.sqrt(alphas_cumprod[first]) * MEAN + marginal_std(alphas_cumprod[first]) \
        * torch.randn(16, 3, generator=torch.Generator().manual_seed(0))
    start = x
    for timestep in scheduler.timesteps:
        alpha_cumprod = alphas_cumprod[int(timestep)]
        scale = torch.sqrt(alpha_cumprod)
        gain = VARIANCE * scale / (alpha_cumprod * VARIANCE + 1 - alpha_cumprod)
        denoised = MEAN + gain * (x - scale * MEAN)
        x = scheduler.step((x - scale * denoised) / torch.sqrt(1 - alpha_cumprod), timestep,
                           x).prev_sample
    sigma_end = scheduler.sigmas[-1].double()
    alpha_end = 1 / (1 + sigma_end**2)
    exact = torch.sqrt(alpha_end) * MEAN + marginal_std(alpha_end) / marginal_std(
        alphas_cumprod[first]) * (start - torch.sqrt(alphas_cumprod[first]) * MEAN)
    return float((x - exact).abs().max())


def main() -> int:
    defect = False
    for float64_sigmas in (False, True):
        errors = [run(n, float64_sigmas) for n in STEPS]
        falls = errors[1] <= errors[0] / 16  # at least second order over a factor 4 in N
        label = "with float64 σ's (the patch)" if float64_sigmas else "as shipped"
        print(f"DEISMultistepScheduler(solver_order=3) {label}: errors {errors[0]:.3g} at "
              f"{STEPS[0]} steps, {errors[1]:.3g} at {STEPS[1]}; expected to fall ≥ 16× (third "
              f"order: 64×): {'ok' if falls else 'GROWS' if errors[1] > errors[0] else 'LOW'}")
        defect |= not falls and not float64_sigmas
    print("defect present" if defect else "no defect: the error falls")
    return 1 if defect else 0


if __name__ == "__main__":
    sys.exit(main())
