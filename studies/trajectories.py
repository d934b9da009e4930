"""Sample paths from noise to data, reverse SDE versus probability-flow ODE (the notes' picture),
as a tidy DataFrame: one row per (kind, path, step) with columns kind, path, t, x."""

from __future__ import annotations

import pandas as pd

from sdebench.problems.catalogue import get_problem
from sdebench.seeding import derive_seed, generator
from sdebench.solvers.catalogue import get_solver
from sdebench.solvers.grids import auto_grid
from sdebench.solvers.loop import sample
from sdebench.solvers.noise import GaussianIncrements
from sdebench.theory.catalogue import get_schedule

KINDS = {"reverse SDE (Euler–Maruyama)": "euler_maruyama", "PF-ODE (Heun)": "heun"}
# from a pure-noise end (rf, vp0snr) f and g² are infinite, so Euler–Maruyama cannot take the
# first step; ancestral sampling (DDPM's reverse-SDE discretisation) starts there exactly
PURE_NOISE_KINDS = {"reverse SDE (ancestral)": "ancestral", "PF-ODE (Heun)": "heun"}


def trajectory_frame(schedule_spec: str, seed: int = 0, paths: int = 24,
                     steps: int = 200) -> pd.DataFrame:
    """Paths of both samplers from the same p_{t_max} starts, for the 1-D data of problem
    ``bimodal_1d`` (½N(−1.5, 0.05) + ½N(1.5, 0.05)), float64 on the CPU, on the ``auto`` grid
    (uniform in λ, or ``graded`` from a pure-noise end)."""
    schedule = get_schedule(schedule_spec)
    problem = get_problem("bimodal_1d", schedule, dim=1, seed=seed)
    ts = auto_grid(schedule, steps)
    kinds = PURE_NOISE_KINDS if schedule.pure_noise_end else KINDS
    start = problem.sample_marginal(ts[0], paths, generator(seed, "trajectories"))
    rows = []
    for kind, solver in kinds.items():
        def record(i, t_cur, t_next, x, kind=kind):
            rows.extend({"kind": kind, "path": p, "t": float(t_next), "x": float(v)}
                        for p, v in enumerate(x[:, 0].tolist()))

        rows.extend({"kind": kind, "path": p, "t": float(ts[0]), "x": float(v)}
                    for p, v in enumerate(start[:, 0].tolist()))
        sample(get_solver(solver), problem.denoiser, schedule, start, ts,
               noise=GaussianIncrements(derive_seed(seed, "trajectory_noise")), callback=record)
    return pd.DataFrame(rows)
