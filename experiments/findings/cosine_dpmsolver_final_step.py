"""Finding: diffusers' CosineDPMSolverMultistepScheduler cannot take its last step with
``final_sigmas_type="sigma_min"``: RecursionError in its Brownian tree (NaN under a float64 default
dtype); under a float64 default dtype its default ``"zero"`` raises the RecursionError too.

Standalone (torch and diffusers, with its torchsde; not sdebench). Gaussian data x₀ ~ N(0, diag c)
in EDM's x̃ = x₀ + σ ε; the network is the exact v-prediction F of its preconditioning, D(x̃; σ) =
c_skip x̃ + c_out F with D = c/(c + σ²) x̃, at σ = tan(timestep · π/2) (its c_noise =
atan(σ) · 2/π).

    python experiments/findings/cosine_dpmsolver_final_step.py   # exit 1 while present

Expected: a sample at σ_min, its exact law N(0, c + σ_min²), approached at second order
(SDE-DPM-Solver++(2M), Lu et al. 2022b, §5). The docstring: "If 'sigma_min', the final sigma is
the same as the last sigma in the training schedule".

Cause. ``set_timesteps(N)`` makes N log-uniform σ's from σ_max to σ_min, then appends σ_min: the
last step goes from σ_min (exp(log 0.3) in float32, 0.29999998) to σ_min (float32(0.3),
0.30000001) — zero length, or two ulps *up*. ``step`` draws its noise as W(σ, σ')/√|σ' − σ| from a
Brownian tree built on [sigma_min, sigma_max]: 0/0 = NaN where the two are equal (a float64 default
dtype); where not, the query reaches below the tree's start, torchsde clamps it to (0.3,
0.30000001), rounds both ends to its tolerance (1e-6) into the empty (0.3, 0.3) after its ta == tb
test, and bisects toward it without end. In "zero" mode the last query (σ_min, 0) also lies below
the tree: it passes only where σ_min's rounding lands below 0.3 (then clamped to an empty interval:
zero noise), not where it lands above (a float64 default dtype: 0.30000001).

Patch: (a) under "sigma_min", N + 1 log-uniform σ's whose last is σ_min (every step a real one, as
DPMSolverMultistep's "sigma_min" ends at its table's σ_min); (b) in ``step``, no noise query for a
step to σ = 0, whose noise coefficient σ'·√(1 − e^{−2h}) is 0. The "zero" case is known upstream
(huggingface/diffusers#13274; #13754 builds the tree on the grid's extrema): that bound fixes
"zero" but not "sigma_min", whose zero-length last step remains (the script runs it too).
"""

from __future__ import annotations

import contextlib
import math
import sys
import warnings

import torch

VARIANCE = torch.tensor([0.1, 1.0, 4.0], dtype=torch.float64)
STEPS = (16, 64, 256)
VARIANTS = ("as shipped", "tree on the grid's extrema", "patched")


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    """torch's default dtype, in which the scheduler computes its σ grid before float32."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def network(scheduler, x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
    """The exact v-prediction F of EDM's preconditioning (σ_data = 1: c_skip = 1/(σ² + 1),
    c_out = −σ/√(σ² + 1)) at σ = tan(timestep · π/2), for the state ``x``."""
    sigma = torch.tan(timestep.double() * math.pi / 2)
    x_tilde = scheduler.scale_model_input(x, timestep).double() * torch.sqrt(sigma**2 + 1)
    denoised = VARIANCE / (VARIANCE + sigma**2) * x_tilde
    return ((denoised - x_tilde / (sigma**2 + 1)) / (-sigma / torch.sqrt(sigma**2 + 1))).to(x)


def scheduler_for(steps: int, final: str, patched: bool):
    """The scheduler with its timesteps set, as shipped or with patch (a)."""
    from diffusers import CosineDPMSolverMultistepScheduler

    scheduler = CosineDPMSolverMultistepScheduler(final_sigmas_type=final)
    scheduler.set_timesteps(steps)
    if patched and final == "sigma_min":
        sigmas = scheduler._compute_exponential_sigmas(torch.linspace(0, 1, steps + 1)).float()
        scheduler.timesteps = scheduler.precondition_noise(sigmas[:-1])
        scheduler.sigmas = torch.cat([sigmas[:-1], torch.tensor([scheduler.config.sigma_min])
                                      .float()])
    return scheduler


def without_noise_at_zero(noise_sampler):
    """Patch (b): no query for a step to σ = 0, whose noise is multiplied by 0."""
    return lambda sigma, sigma_next: (torch.zeros(()) if float(sigma_next) == 0
                                      else noise_sampler(sigma, sigma_next))


def sample(steps: int, final: str, variant: str) -> str:
    """The scheduler's loop with its own Brownian tree, what happens in words. ``variant``:
    "as shipped"; "tree on the grid's extrema", the bounds proposed upstream for "zero"
    (huggingface/diffusers#13754); "patched", patches (a) and (b)."""
    from diffusers.schedulers.scheduling_dpmsolver_sde import BrownianTreeNoiseSampler

    generator = torch.Generator().manual_seed(0)
    scheduler = scheduler_for(steps, final, patched=variant == "patched")
    x = torch.randn(8, 3, generator=generator) * scheduler.init_noise_sigma
    sigmas = scheduler.sigmas
    if variant == "patched":  # the tree step() makes, with patch (b)
        scheduler.noise_sampler = without_noise_at_zero(BrownianTreeNoiseSampler(
            x, scheduler.config.sigma_min, scheduler.config.sigma_max, seed=0))
    elif variant != "as shipped":
        scheduler.noise_sampler = BrownianTreeNoiseSampler(
            x, float(sigmas.min()), float(sigmas.max()), seed=0)
    last = f"last step σ {float(sigmas[-2]):.8f} → {float(sigmas[-1]):.8f}"
    try:
        for timestep in scheduler.timesteps:
            x = scheduler.step(network(scheduler, x, timestep), timestep, x,
                               generator=generator).prev_sample
    except RecursionError:
        return f"RecursionError ({last})"
    return "ok" if bool(torch.isfinite(x).all()) else f"NaN ({last})"


def exact_variance(steps: int) -> torch.Tensor:
    """The output variance of the patched sampler from x ~ N(0, σ_max²), exactly: its steps are
    linear in the start and in each step's noise, a standard normal independent of the other
    steps' (increments of one Brownian path over disjoint intervals), so one run on the rows
    (start 1, no noise) and (start 0, unit noise at step k) gives every coefficient."""
    scheduler = scheduler_for(steps, "sigma_min", patched=True)
    count = len(scheduler.timesteps)
    x = torch.zeros(1 + count, 3)
    x[0] = 1
    served = []

    def unit_noise(sigma, sigma_next):
        noise = torch.zeros(1 + count, 3)
        noise[1 + len(served)] = 1
        served.append(sigma)
        return noise

    scheduler.noise_sampler = unit_noise
    for timestep in scheduler.timesteps:
        x = scheduler.step(network(scheduler, x, timestep), timestep, x).prev_sample
    x = x.double()
    return scheduler.init_noise_sigma**2 * x[0] ** 2 + (x[1:] ** 2).sum(0)


def main() -> int:
    warnings.filterwarnings("ignore", module="torchsde")  # its notices of clamped queries
    defect = False
    for dtype in (torch.float32, torch.float64):
        for final in ("sigma_min", "zero"):
            with default_dtype(dtype):
                outcomes = {variant: sample(STEPS[0], final, variant) for variant in VARIANTS}
            defect |= outcomes["as shipped"] != "ok"
            print(f"default dtype {str(dtype)[6:]}, final_sigmas_type={final!r}, {STEPS[0]} "
                  f"steps: {'; '.join(f'{v}: {o}' for v, o in outcomes.items())}")
    sigma_min = 0.3  # the config's
    errors = [float(((exact_variance(n) / (VARIANCE + sigma_min**2)) - 1).abs().max())
              for n in STEPS]
    orders = [math.log2(errors[k] / errors[k + 1]) / math.log2(STEPS[k + 1] / STEPS[k])
              for k in range(len(STEPS) - 1)]
    print(f"patched, 'sigma_min': output variance against the exact c + σ_min², largest relative "
          f"error {', '.join(f'{e:.2g}' for e in errors)} at {', '.join(map(str, STEPS))} steps; "
          f"order {', '.join(f'{o:.2f}' for o in orders)} (expected 2)")
    print("defect present" if defect else "no defect: every final step runs")
    return 1 if defect else 0


if __name__ == "__main__":
    sys.exit(main())
