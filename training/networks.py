"""A small time-conditioned network for DSM training: MLP on preconditioned inputs.

Inputs follow EDM's preconditioning (Karras et al. 2022, Table 1): the state scaled to unit
variance, c_in x = x / √(s² σ_data² + (sσ)²), and the noise level as c_noise = ¼ ln σ — or, on a
schedule with a pure-noise end (rf, vp0snr), where ln σ = ∞ there, the kernel's std sσ (τ on rf,
the time flow networks take; Esser et al. 2024); the output is
the raw prediction of the chosen kind (ε, x₀, v or score), converted by the adapters. The schedule
is part of the network (it is trained on one), named by its spec so a checkpoint rebuilds it.
"""

from __future__ import annotations

import torch

from sdebench.theory.catalogue import get_schedule


class ScoreMLP(torch.nn.Module):
    """``model(x, t)`` for states (batch, dim) and times (batch,) of schedule ``schedule``."""

    def __init__(self, dim: int, schedule: str, width: int = 128, depth: int = 3,
                 data_std: float = 1.0):
        super().__init__()
        if dim < 1 or width < 1 or depth < 1 or not data_std > 0:
            raise ValueError(f"need dim, width, depth >= 1 and data_std > 0, got {dim}, {width}, "
                             f"{depth}, {data_std}")
        self.sample_shape = (dim,)
        self.schedule_spec, self.data_std = schedule, float(data_std)
        self._numeric = get_schedule(schedule).numeric
        layers, size = [], dim + 1
        for _ in range(depth):
            layers += [torch.nn.Linear(size, width), torch.nn.SiLU()]
            size = width
        self.net = torch.nn.Sequential(*layers, torch.nn.Linear(size, dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        numeric = self._numeric
        s, std = numeric.s(t)[:, None], numeric.kernel_std(t)[:, None]
        scaled = x / torch.sqrt((s * self.data_std) ** 2 + std**2)
        noise_level = std if numeric.pure_noise_end else 0.25 * torch.log(numeric.sigma(t)[:, None])
        return self.net(torch.cat([scaled, noise_level], dim=1))
