"""Sample paths from noise to data, reverse SDE versus probability-flow ODE (the notes' picture),
as a tidy DataFrame: one row per (kind, path, step) with columns kind, path, t, x."""

from __future__ import annotations

import pandas as pd
import torch
from sdebench.problems.mixture import GaussianMixtureProblem
from sdebench.solvers.base import sample
from sdebench.solvers.grids import log_snr_grid
from sdebench.solvers.noise import GaussianIncrements
from sdebench.theory import get_schedule

KINDS = {"reverse SDE (Euler–Maruyama)": "euler_maruyama", "PF-ODE (Heun)": "heun"}


def trajectory_frame(sde: str, paths: int = 24, steps: int = 200, seed: int = 0) -> pd.DataFrame:
    """Paths of both samplers from the same p_{t_max} starts, for 1-D data ½N(−1.5, 0.05) +
    ½N(1.5, 0.05)."""
    schedule = get_schedule(sde)
    problem = GaussianMixtureProblem(
        schedule, torch.ones(2, dtype=torch.float64),
        torch.tensor([[-1.5], [1.5]], dtype=torch.float64), torch.full((2, 1), 0.05, dtype=torch.float64),
    )
    ts = log_snr_grid(schedule, steps)
    start = problem.sample_marginal(ts[0], paths, torch.Generator().manual_seed(seed))
    rows = []
    for kind, solver in KINDS.items():
        def record(i, t_cur, t_next, x, kind=kind):
            rows.extend({"kind": kind, "path": p, "t": float(t_next), "x": float(v)}
                        for p, v in enumerate(x[:, 0].tolist()))

        rows.extend({"kind": kind, "path": p, "t": float(ts[0]), "x": float(v)}
                    for p, v in enumerate(start[:, 0].tolist()))
        sample(solver, problem.denoiser, schedule, start, ts, noise=GaussianIncrements(seed + 1),
               callback=record)
    return pd.DataFrame(rows)
