"""Finding: DPM-Solver++(3M) converges at second order, not third, in diffusers and k-diffusion.

Standalone (torch and the peer libraries only; not sdebench). On Gaussian data the exact
denoiser is known in closed form and the probability-flow ODE maps each marginal quantile to
the same quantile, so every sampler's output is compared with the exact ODE solution of its own
start points, on its own σ grid. The order is the slope of log error against log N.

    python experiments/findings/dpmpp_3m_second_order.py    # exit 1 while the defect is present

Expected: order 3 (Lu et al. 2022b, "DPM-Solver++", §4: the multistep data-prediction solver of
order k has global error O(h^k)). The step's last term weights D2 = (D1₀ − D1₁)/(r₀ + r₁),
about h²D''/2, by φ₃ = φ₂/h − ½, while the Taylor term of the exact integral,
∫₀ʰ e^{u−h} u²/2 du · D'' = −h² φ₃ D'', needs h² D'': the step errs by O(h³) every step.
Doubling D2 (``corrected_3m`` below, the minimal patch) gives third order.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import types
from pathlib import Path

import torch

torch.set_default_dtype(torch.float64)
MEAN = torch.tensor([0.5, -1.0, 0.2])
VARIANCE = torch.tensor([0.1, 1.0, 4.0])
STEPS = (32, 64, 128)
EXPECTED, TOLERANCE = 3.0, 0.25  # pre-asymptotic slopes of a third-order method stay above 2.75


def denoised_ve(x, sigma):
    """E[x₀ | x₀ + σε = x] for x₀ ~ N(MEAN, diag VARIANCE)."""
    return MEAN + VARIANCE / (VARIANCE + sigma**2) * (x - MEAN)


def exact_ve(x, sigma_from, sigma_to):
    """The PF-ODE solution in x̃ = x₀ + σε: the same quantile at σ_to."""
    return MEAN + torch.sqrt((VARIANCE + sigma_to**2) / (VARIANCE + sigma_from**2)) * (x - MEAN)


def starts(sigma, n=16):
    generator = torch.Generator().manual_seed(0)
    return MEAN + torch.sqrt(VARIANCE + sigma**2) * torch.randn(n, 3, generator=generator)


def order(errors: dict) -> float:
    steps = sorted(errors)
    return -math.log(errors[steps[-1]] / errors[steps[0]]) / math.log(steps[-1] / steps[0])


def diffusers_3m(steps: int) -> float:
    """DPMSolverMultistepScheduler(solver_order=3), ε-network exact for its own table ᾱ_τ, ending
    at the table's σ_min; largest error against the exact ODE solution."""
    from diffusers import DPMSolverMultistepScheduler

    scheduler = DPMSolverMultistepScheduler(solver_order=3, final_sigmas_type="sigma_min")
    scheduler.set_timesteps(steps)
    alphas_cumprod = scheduler.alphas_cumprod.double()
    sigma = lambda tau: torch.sqrt((1 - alphas_cumprod[tau]) / alphas_cumprod[tau])  # noqa: E731
    first = int(scheduler.timesteps[0])
    x_tilde = starts(sigma(first))
    x = x_tilde * torch.sqrt(alphas_cumprod[first])  # the VP state √ᾱ x₀ + √(1 − ᾱ) ε
    for timestep in scheduler.timesteps:
        tau = int(timestep)
        scale = torch.sqrt(alphas_cumprod[tau])
        epsilon = (x / scale - denoised_ve(x / scale, sigma(tau))) / sigma(tau)
        x = scheduler.step(epsilon, timestep, x).prev_sample
    sigma_end = scheduler.sigmas[-1].double()
    x_end = x * torch.sqrt(1 + sigma_end**2)
    return float((x_end - exact_ve(x_tilde, sigma(first), sigma_end)).abs().max())


def kdiffusion_sampling():
    """k_diffusion.sampling, or with a --no-deps install (its package imports its training
    stack) the installed sampling.py loaded on its own; None where k-diffusion is absent."""
    try:
        from k_diffusion import sampling
        return sampling
    except ImportError:
        spec = importlib.util.find_spec("k_diffusion")
        if spec is None:
            return None
    package = types.ModuleType("_kd")
    package.__path__ = []
    package.utils = types.SimpleNamespace(
        append_dims=lambda x, n: x[(...,) + (None,) * (n - x.ndim)])
    sys.modules.update({"_kd": package, "_kd.utils": package.utils})
    path = Path(next(iter(spec.submodule_search_locations))) / "sampling.py"
    module_spec = importlib.util.spec_from_file_location("_kd.sampling", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def kdiffusion_3m(steps: int, sampling) -> float:
    """sample_dpmpp_3m_sde with eta = 0 (its ODE), log-uniform σ from 80 to 0.002."""
    sigmas = torch.exp(torch.linspace(math.log(80), math.log(0.002), steps + 1))
    x = starts(sigmas[0])
    out = sampling.sample_dpmpp_3m_sde(lambda x, s: denoised_ve(x, s[:, None]), x, sigmas,
                                       eta=0.0, noise_sampler=lambda a, b: 0, disable=True)
    return float((out - exact_ve(x, sigmas[0], sigmas[-1])).abs().max())


def corrected_3m(steps: int) -> float:
    """The same 3M step with D2 doubled (the patch), same grid as kdiffusion_3m."""
    sigmas = torch.exp(torch.linspace(math.log(80), math.log(0.002), steps + 1))
    x = start = starts(sigmas[0])
    history = []
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:], strict=True):
        denoised = denoised_ve(x, sigma)
        h = torch.log(sigma / sigma_next)
        phi_2 = torch.expm1(-h) / h + 1
        x = torch.exp(-h) * x - torch.expm1(-h) * denoised
        if len(history) >= 2:
            (d_1, h_1), (d_2, h_2) = history[-1], history[-2]
            r0, r1 = h_1 / h, h_2 / h
            d1_0, d1_1 = (denoised - d_1) / r0, (d_1 - d_2) / r1
            d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
            x = x + phi_2 * d1 - (phi_2 / h - 0.5) * 2 * (d1_0 - d1_1) / (r0 + r1)
        elif history:
            x = x + phi_2 * (denoised - history[-1][0]) / (history[-1][1] / h)
        history.append((denoised, h))
    return float((x - exact_ve(start, sigmas[0], sigmas[-1])).abs().max())


def main() -> int:
    runs = {"diffusers DPMSolverMultistepScheduler(solver_order=3), its own 1000-step VP table":
            diffusers_3m}
    sampling = kdiffusion_sampling()
    if sampling is not None:
        runs["k-diffusion sample_dpmpp_3m_sde(eta=0), σ log-uniform 80 → 0.002"] = \
            lambda n: kdiffusion_3m(n, sampling)
    runs["the same 3M step with D2 doubled (the patch), k-diffusion's grid"] = corrected_3m
    defect = False
    for name, run in runs.items():
        errors = {n: run(n) for n in STEPS}
        measured = order(errors)
        low = measured < EXPECTED - TOLERANCE
        defect |= low and "patch" not in name
        print(f"{name}: errors {', '.join(f'{errors[n]:.3g}' for n in STEPS)} at "
              f"{', '.join(map(str, STEPS))} steps; measured order {measured:.2f}, expected "
              f"{EXPECTED:g} ({'LOW' if low else 'ok'})")
    print("defect present" if defect else "no defect: third order")
    return 1 if defect else 0


if __name__ == "__main__":
    sys.exit(main())
