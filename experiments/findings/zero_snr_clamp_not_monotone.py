"""Finding: with ``rescale_betas_zero_snr=True`` on diffusers' default linear betas, the clamp of
the last ᾱ to 2⁻²⁴ puts it above the next-to-last ᾱ, so σ is not monotone at the table's end
and a fine grid's first step goes *up* in σ.

Standalone (diffusers only; not sdebench).

    python experiments/findings/zero_snr_clamp_not_monotone.py   # exit 1 while present

Expected: a noise table whose σ_τ = √((1 − ᾱ_τ)/ᾱ_τ) increases with τ, so that every sampler's
σ grid decreases (Lin et al. 2024, §3.1: the rescaled schedule keeps √ᾱ decreasing, down to 0 at
τ = T − 1). DPMSolverMultistep, UniPC, Euler and EulerAncestral then set ᾱ_{T−1} = 2⁻²⁴ ("so
first sigma is not inf"). On the linear betas 1e-4 … 0.02 (T = 1000, DDPM's and diffusers'
default) the rescaled ᾱ_{T−2} is 4.2e-9 < 2⁻²⁴ = 6.0e-8: σ_{T−2} = 15406 > σ_{T−1} = 4096. With
trailing spacing at 1000 steps Euler's first step goes from σ = 4096 to 15406. Stable
Diffusion's scaled-linear betas stay monotone (ᾱ_{T−2} = 2.0e-7). A minimal patch clamps to
min(2⁻²⁴, ᾱ_{T−2}/2) — any value below ᾱ_{T−2} keeps the order.
"""

from __future__ import annotations

import sys


def main() -> int:
    from diffusers import EulerDiscreteScheduler

    defect = False
    for label, options in (("linear betas (default)", {}),
                           ("scaled_linear betas (Stable Diffusion)",
                            {"beta_schedule": "scaled_linear", "beta_start": 0.00085,
                             "beta_end": 0.012})):
        scheduler = EulerDiscreteScheduler(rescale_betas_zero_snr=True,
                                           timestep_spacing="trailing", **options)
        alphas = scheduler.alphas_cumprod
        scheduler.set_timesteps(1000)
        sigmas = scheduler.sigmas[:3].tolist()
        monotone = float(alphas[-1]) < float(alphas[-2])
        defect |= not monotone
        print(f"{label}: ᾱ_(T−2) = {float(alphas[-2]):.3g}, clamped ᾱ_(T−1) = "
              f"{float(alphas[-1]):.3g}; Euler's first σ's at 1000 trailing steps: "
              f"{', '.join(f'{s:.0f}' for s in sigmas)} — "
              f"{'monotone' if monotone else 'NOT MONOTONE: its first step goes up in σ'}")
    print("defect present" if defect else "no defect: σ decreases along every grid")
    return 1 if defect else 0


if __name__ == "__main__":
    sys.exit(main())
