"""Check samplers on your own network: a study against a reference solve (no exact answer needed).

The network here is a small MLP ε-model with random (seeded) weights: what matters for the
solvers' orders is that the probability-flow ODE it defines is smooth, not that it was trained.
Replace ``tiny_eps_mlp`` by a factory that returns your own module (or an adapter for a diffusers
or k-diffusion model, see ``sdebench.problems.adapters``). The same from the command line:

    sdebench convergence --model examples/own_model.py:tiny_eps_mlp --prediction eps --sde vp \\
        --samplers euler,heun,dpmpp_2m --steps 8,16,32,64 --batch 64

Run: ``python examples/own_model.py``.
"""

from __future__ import annotations

import torch

from sdebench.studies.config import StudyConfig
from sdebench.studies.convergence import run_study
from sdebench.studies.reference import reference_summary


class PreconditionedEpsMLP(torch.nn.Module):
    """ε̂(x, t) on the VP schedule (β from 0.1 to 20), shaped as trained networks are: the ideal
    ε of unit-variance data, σ x/√(1+σ²), plus an MLP residual scaled by 1/√(1+σ²), the MLP
    fed c_in x = x (VP states have unit variance) and c_noise = ¼ log σ (Karras et al. 2022,
    Table 1). With random weights it defines a smooth probability-flow ODE that no formula
    solves — what a study of a real network faces."""

    sample_shape = (8,)

    def __init__(self, dim: int = 8, width: int = 64):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(dim + 1, width), torch.nn.SiLU(),
                                       torch.nn.Linear(width, width), torch.nn.SiLU(),
                                       torch.nn.Linear(width, dim))

    def forward(self, x, t):
        sigma = torch.sqrt(torch.expm1(0.1 * t + 9.95 * t**2))[:, None]  # VP: σ² = e^B − 1
        root = torch.sqrt(1 + sigma**2)
        features = torch.cat([x, 0.25 * torch.log(sigma)], dim=1)
        return sigma / root * x + self.net(features) / root


def tiny_eps_mlp() -> torch.nn.Module:
    """The factory a study calls: the same weights every time (seeded)."""
    torch.manual_seed(0)
    return PreconditionedEpsMLP().double()


def main() -> None:
    config = StudyConfig(schedules=["vp"], samplers=["euler", "heun", "dpmpp_2m"],
                         steps=[8, 16, 32, 64, 128, 256], batch=64,
                         model="examples/own_model.py:tiny_eps_mlp", prediction="eps")
    study = run_study(config, progress=False, trajectories=False)
    errors = study.results[["sampler", "steps", "value", "floor", "against"]]
    print(errors.to_string(index=False))
    print(study.orders[["sampler", "points", "measured_order", "ci95", "declared_order",
                        "verdict"]].to_string(index=False))
    print("\n".join(reference_summary(study.orders)))


if __name__ == "__main__":
    main()
