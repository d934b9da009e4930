"""Convergence study CLI: measured solver orders (with 95% CIs) against declared orders.

    python experiments/convergence.py --sde vp

Thin wrapper: argument parsing, then studies.convergence, studies.order and reports.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SDE_CHOICES = ["vp", "vp_cosine", "subvp", "ve", "edm"]


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    from sdebench.solvers.grids import GRIDS
    from sdebench.solvers.registry import SOLVERS

    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run samplers over step counts on a problem with exact answers, fit the "
                    "convergence order (log-log least squares, 95%% CI) and compare it with each "
                    "sampler's declared order. Results are saved after every run (resumable).",
    )
    parser.add_argument("--sde", default="vp", choices=[*SDE_CHOICES, "all"],
                        help="catalogue schedule, or 'all' (default: vp)")
    parser.add_argument("--samplers", default="all",
                        help=f"comma-separated sampler names or 'all' (known: {', '.join(SOLVERS)})")
    parser.add_argument("--steps", default="16,32,64,128,256",
                        help="comma-separated step counts, each >= 1 (default: 16,32,64,128,256)")
    parser.add_argument("--problem", default="gaussian", choices=["gaussian", "gmm"],
                        help="gaussian: exact output law (W2, KL, no MC noise); gmm: Gaussian "
                             "mixture with Monte Carlo metrics (default: gaussian)")
    parser.add_argument("--dim", type=int, default=4, help="data dimension (default: 4; gmm ring: 2)")
    parser.add_argument("--batch", type=int, default=256,
                        help="samples per run: timing, strong errors and gmm metrics (default: 256)")
    parser.add_argument("--grid", default="logsnr", choices=sorted(GRIDS),
                        help="time grid family (default: logsnr)")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed for data and noise (default: 0)")
    parser.add_argument("--out", default="results/convergence",
                        help="output directory; re-running with the same --out resumes")
    parser.add_argument("--no-report", action="store_true", help="skip the HTML report")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def parse_args(argv=None, prog: str | None = None):
    import torch
    from sdebench.solvers.registry import SOLVERS

    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.samplers == "all":
        args.samplers = list(SOLVERS)
    else:
        args.samplers = [name.strip() for name in args.samplers.split(",") if name.strip()]
        unknown = [name for name in args.samplers if name not in SOLVERS]
        if unknown or not args.samplers:
            parser.error(f"unknown sampler(s) {unknown}; choose from {', '.join(SOLVERS)}")
    try:
        args.steps = sorted({int(value) for value in args.steps.split(",")})
    except ValueError:
        parser.error(f"--steps must be comma-separated integers, got {args.steps!r}")
    if not args.steps or min(args.steps) < 1:
        parser.error(f"--steps must all be >= 1, got {args.steps}")
    if args.dim < 1:
        parser.error(f"--dim must be >= 1, got {args.dim}")
    if args.batch < 2:
        parser.error(f"--batch must be >= 2, got {args.batch}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda requested but no CUDA device is available")
    if not (args.device == "cpu" or args.device.startswith("cuda")):
        parser.error(f"--device must be cpu or cuda[:N], got {args.device!r}")
    if Path(args.out).suffix or Path(args.out).is_file():
        parser.error(f"--out is a directory (results.csv and report.html go inside), "
                     f"got {args.out!r}")
    args.sdes = SDE_CHOICES if args.sde == "all" else [args.sde]
    return args


def main(argv=None, prog: str | None = None) -> int:
    args = parse_args(argv, prog)
    import pandas as pd
    from sdebench.studies.convergence import StudyConfig, run_study
    from sdebench.studies.order import VERDICT_LEGEND, order_table
    from sdebench.studies.store import ResultStore

    config = StudyConfig(sdes=args.sdes, samplers=args.samplers, steps=args.steps,
                         problem=args.problem, dim=args.dim, batch=args.batch, grid=args.grid,
                         dtype=args.dtype, device=args.device, seed=args.seed)
    store = ResultStore(args.out)
    sample_store = ResultStore(args.out, "samples.csv")
    results = run_study(config, store, progress=not args.quiet, sample_store=sample_store)
    parquet = store.write_parquet()
    print(f"results: {store.path}" + (f" and {parquet}" if parquet else " (Parquet: no engine installed)"))
    if args.problem == "gaussian":
        table = order_table(results)
        with pd.option_context("display.width", 200, "display.max_colwidth", 70,
                               "display.max_rows", 500):
            print(table.drop(columns=["problem", "metric"]).to_string(
                index=False, float_format=lambda v: f"{v:.3f}"))
        counts = table.verdict.value_counts().to_dict()
        print("verdicts:", ", ".join(f"{k} {v}" for k, v in counts.items()))
        print(VERDICT_LEGEND)
    if not args.no_report:
        from sdebench.reports.html import write_report
        from sdebench.studies.trajectories import trajectory_frame

        trajectories = pd.concat([trajectory_frame(sde).assign(sde=sde) for sde in args.sdes])
        samples = sample_store.frame if not sample_store.frame.empty else None
        path = write_report(results, Path(args.out) / "report.html", command=" ".join(sys.argv),
                            samples=samples, trajectories=trajectories)
        print(f"report: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
