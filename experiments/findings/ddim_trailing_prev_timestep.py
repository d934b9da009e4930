"""Finding: diffusers' DDIMScheduler.step() steps to ``timestep − T // N`` (T =
num_train_timesteps, N = num_inference_steps), a uniform integer stride that only "leading"
spacing has. With ``timestep_spacing="trailing"`` (or "linspace") and N ∤ T, its timesteps are
T/N apart, rounded: each step lands at ᾱ(t − ⌊T/N⌋) while the next step starts at the next
listed timestep and reads the state as if it were there. The error stops falling at 32 steps and
grows from 64.

Standalone (torch, numpy and diffusers only; not sdebench). Stable Diffusion's training table
and DDIM configuration: ``DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085,
beta_end=0.012, set_alpha_to_one=False, clip_sample=False, timestep_spacing="trailing")``, T =
1000. Gaussian data x₀ ~ N(0, diag v), v = (0.1, 1, 4); the network is the exact ε-prediction in
DDIM's state x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε: E[ε | x_t] = √(1 − ᾱ_t) x_t/(ᾱ_t v + 1 − ᾱ_t). The
network is linear and η = 0, so the sampler is linear per coordinate: started from the exact
marginal at the first timestep (std √(ᾱ_t v + 1 − ᾱ_t)), the loop run on that std gives the
output's std, and the output law is N(0, diag std_out²). The exact law at the end is the data's at
final_alpha_cumprod = ᾱ₀ (``set_alpha_to_one=False``), std √(ᾱ₀ v + 1 − ᾱ₀), and
W₂ = √Σ(std_out − std_true)². The states are float64 tensors; the scheduler's ᾱ table is its own
float32 one (its step multiplies float32 0-d ᾱ's into them), the same ᾱ's in the truth.

    python experiments/findings/ddim_trailing_prev_timestep.py   # exit 1 while present

Expected: DDIM is first order (Song et al. 2021, DDIM; Lu et al. 2022: DDIM = DPM-Solver-1), its
error halving per doubling of N. Patch (minimal, implemented here by a subclass whose ``step``
looks the previous timestep up and otherwise repeats DDIM's η = 0 update in the same operations):
``prev_timestep = self.timesteps[i + 1]``, or final_alpha_cumprod after the last, as DDPMScheduler
does since huggingface/diffusers#9384. Criterion: the defect is present while the stock W₂ at 256
steps exceeds the stock W₂ at 32 steps (a first-order method has about 1/8 of it there; the
patched sampler does).
"""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np
import torch

VARIANCE = torch.tensor([0.1, 1.0, 4.0], dtype=torch.float64)
STEPS = (8, 16, 32, 64, 128, 256)
CONTROL = 50  # divides T = 1000: the stride is exact and the patch changes nothing
CONFIG = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
              num_train_timesteps=1000, set_alpha_to_one=False, clip_sample=False,
              timestep_spacing="trailing")


def patched_class():
    """DDIMScheduler whose step takes ᾱ_prev at the next listed timestep (η = 0, ε only)."""
    from diffusers import DDIMScheduler
    from diffusers.schedulers.scheduling_ddim import DDIMSchedulerOutput

    class LookupDDIMScheduler(DDIMScheduler):
        def step(self, model_output, timestep, sample, eta=0.0, **kwargs):
            assert eta == 0 and self.config.prediction_type == "epsilon"
            index = int((self.timesteps == timestep).nonzero()[0])
            prev_timestep = int(self.timesteps[index + 1]) if index + 1 < len(self.timesteps) else -1
            # the rest as DDIMScheduler.step with eta = 0 and the same operations
            alpha_prod_t = self.alphas_cumprod[timestep]
            alpha_prod_t_prev = (self.alphas_cumprod[prev_timestep] if prev_timestep >= 0
                                 else self.final_alpha_cumprod)
            beta_prod_t = 1 - alpha_prod_t
            pred_original_sample = (sample - beta_prod_t ** (0.5) * model_output) / alpha_prod_t ** (0.5)
            std_dev_t = 0.0
            pred_sample_direction = (1 - alpha_prod_t_prev - std_dev_t**2) ** (0.5) * model_output
            prev_sample = alpha_prod_t_prev ** (0.5) * pred_original_sample + pred_sample_direction
            return DDIMSchedulerOutput(prev_sample=prev_sample,
                                       pred_original_sample=pred_original_sample)

    return LookupDDIMScheduler


def w2(steps: int, patched: bool) -> float:
    """W₂ between DDIM's exact output law and the data's law at ᾱ₀."""
    from diffusers import DDIMScheduler

    scheduler = (patched_class() if patched else DDIMScheduler)(**CONFIG)
    scheduler.set_timesteps(steps)
    table = scheduler.alphas_cumprod.double()
    first = int(scheduler.timesteps[0])
    x = torch.sqrt(table[first] * VARIANCE + 1 - table[first])[None]  # the start's std
    for timestep in scheduler.timesteps:
        alpha = table[int(timestep)]
        epsilon = torch.sqrt(1 - alpha) * x / (alpha * VARIANCE + 1 - alpha)
        x = scheduler.step(epsilon, timestep, x).prev_sample
    final = float(scheduler.final_alpha_cumprod)
    truth = torch.sqrt(final * VARIANCE + 1 - final)
    return float(torch.sqrt(((x[0].abs() - truth) ** 2).sum()))


def main() -> int:
    from diffusers import DDIMScheduler

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    example = DDIMScheduler(**CONFIG)
    example.set_timesteps(13)
    listed = example.timesteps.numpy()
    print(f"trailing, N = 13: timesteps {', '.join(map(str, listed[:3]))}, … "
          f"({sorted(set((-np.diff(listed)).tolist()))} apart); step's stride 1000 // 13 = "
          f"{1000 // 13}")
    stock = {n: w2(n, False) for n in STEPS}
    patched = {n: w2(n, True) for n in STEPS}
    print("DDIMScheduler, SD's table, trailing spacing, exact ε-network, W₂ of the output law "
          "at ᾱ₀ (expected: first order, halving per doubling)")
    print(f"{'N':>5} {'stride':>6} {'as shipped':>11} {'order':>6} {'patched':>10} {'order':>6}")
    for i, n in enumerate(STEPS):
        orders = ["", ""]
        if i + 1 < len(STEPS):
            m = STEPS[i + 1]
            orders = [f"{math.log2(e[n] / e[m]):.2f}" for e in (stock, patched)]
        print(f"{n:>5} {1000 // n:>6} {stock[n]:>11.4g} {orders[0]:>6} {patched[n]:>10.4g} "
              f"{orders[1]:>6}")
    control = (w2(CONTROL, False), w2(CONTROL, True))
    print(f"{CONTROL:>5} {1000 // CONTROL:>6} {control[0]:>11.4g} {'':>6} {control[1]:>10.4g}"
          f"   (N | T: control, {'identical' if control[0] == control[1] else 'DIFFERENT'})")
    grows = stock[256] > stock[32]
    print(f"as shipped: W₂ {stock[256]:.3g} at 256 steps vs {stock[32]:.3g} at 32 "
          f"({'GROWS' if grows else 'ok'}); patched: {patched[256]:.3g} vs {patched[32]:.3g} "
          f"(ratio {patched[32] / patched[256]:.1f}, first order: 8)")
    print("defect present" if grows else "no defect: the error falls with the step count")
    return 1 if grows else 0


if __name__ == "__main__":
    sys.exit(main())
