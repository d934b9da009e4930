"""Speed relative to the floor: wall time / (NFE × one denoiser evaluation).

    python experiments/speed.py                  # d = 3072, batch 1024, float32, CPU

Problem: Gaussian data with a full (randomly rotated) covariance, whose exact denoiser costs two
d×d matrix products per call, the role a network plays in practice. Targets (issue 7):
deterministic samplers ≤ 1.2× the floor; stochastic samplers ≤ 2× the floor plus the time of
drawing their noise (measured separately and reported).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def timed(fn, device: str, repeat: int = 3) -> float:
    """Best wall time of ``repeat`` calls, synchronising CUDA around each."""
    import torch

    best = float("inf")
    for _ in range(repeat):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def floor_time(call, device: str, repeat: int = 3, calls: int = 8) -> float:
    """One model evaluation: the best of ``repeat`` timings of ``calls`` back-to-back calls."""
    return timed(lambda: [call() for _ in range(calls)], device, repeat) / calls


class CountingNoise:
    """Counts the noise draws a sampler makes (for the stochastic samplers' allowance)."""

    def __init__(self, inner):
        self.inner, self.draws = inner, 0

    def increment(self, t_a, t_b, like, channel=0):
        self.draws += 1
        return self.inner.increment(t_a, t_b, like, channel)

    def normal(self, t_a, t_b, like, channel=0):
        self.draws += 1
        return self.inner.normal(t_a, t_b, like, channel)


COVARIANCES = ("full", "diagonal")


def speed_problem(dim: int, dtype: str, device: str, covariance: str = "full"):
    """Gaussian data N(m, U diag(λ) Uᵀ) on VP, log λ ~ U(−2, 2), seed 0; U a random rotation
    (``full``: the denoiser is two d×d products, a network's role) or I (``diagonal``: a cheap,
    memory-bound denoiser, so the sampler's own overhead shows)."""
    import torch

    from problems.gaussian import GaussianProblem
    from theory import get_schedule

    if covariance not in COVARIANCES:
        raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")
    generator = torch.Generator().manual_seed(0)
    rotation, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator))
    eigenvalues = torch.exp(torch.rand(dim, generator=generator) * 4 - 2)
    return GaussianProblem(get_schedule("vp"), torch.randn(dim, generator=generator), eigenvalues,
                           rotation if covariance == "full" else None
                           ).to(dtype=getattr(torch, dtype), device=device)


def main(argv=None) -> int:
    from solvers.registry import SOLVERS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dim", type=int, default=3072)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=5, help="timings per measurement (best kept)")
    parser.add_argument("--covariance", default="full", choices=COVARIANCES)
    parser.add_argument("--samplers", default=",".join(n for n in SOLVERS if n != "rk45"))
    args = parser.parse_args(argv)
    import pandas as pd
    import torch

    from solvers.base import sample
    from solvers.grids import log_snr_grid
    from solvers.noise import GaussianIncrements
    from solvers.registry import get_solver

    dtype = getattr(torch, args.dtype)
    problem = speed_problem(args.dim, args.dtype, args.device, args.covariance)
    schedule = problem.schedule
    ts = log_snr_grid(schedule, args.steps, device=args.device)
    x = problem.sample_marginal(ts[0].to(dtype), args.batch)
    t_mid = ts[args.steps // 2]
    problem.denoiser(x, t_mid)  # warm-up
    floor = floor_time(lambda: problem.denoiser(x, t_mid), args.device, args.repeat)
    noise_draw = timed(lambda: GaussianIncrements(0).increment(ts[0], ts[1], x), args.device,
                       args.repeat)
    rows = []
    for name in args.samplers.split(","):
        solver = get_solver(name)
        noise = CountingNoise(GaussianIncrements(1))
        result = {}

        def run(name=name, result=result, noise=noise):
            noise.draws = 0
            result["nfe"] = sample(name, problem.denoiser, schedule, x, ts, noise=noise).nfe

        wall = timed(run, args.device, args.repeat)
        work = result["nfe"] * floor
        allowed = 2 * work + noise.draws * noise_draw if solver.stochastic else 1.2 * work
        rows.append({"sampler": name, "stochastic": solver.stochastic, "nfe": result["nfe"],
                     "noise_draws": noise.draws, "wall_s": wall, "floor_ratio": wall / work,
                     "allowed_ratio": allowed / work, "within_target": wall <= allowed})
    table = pd.DataFrame(rows)
    print(f"denoiser (floor) {floor * 1e3:.1f} ms; one noise draw {noise_draw * 1e3:.1f} ms; "
          f"d={args.dim} batch={args.batch} {args.dtype} {args.device} steps={args.steps} "
          f"{args.covariance} covariance")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())
