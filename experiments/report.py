"""Render a report from saved results:  python experiments/report.py results/convergence

The SDE-versus-PF-ODE trajectory figure is recomputed (a second or two per SDE)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="Render an HTML report from a study's results.csv")
    parser.add_argument("results", help="a results.csv file or the study's --out directory")
    parser.add_argument("--output", help="report path (default: report.html beside the results)")
    args = parser.parse_args(argv)
    source = Path(args.results)
    csv = source / "results.csv" if source.is_dir() else source
    if not csv.exists():
        parser.error(f"no results at {csv}")
    import pandas as pd
    from sdebench.reports.html import write_report
    from sdebench.studies.trajectories import trajectory_frame

    results = pd.read_csv(csv)
    output = Path(args.output) if args.output else csv.with_name("report.html")
    samples_csv = csv.with_name("samples.csv")
    samples = pd.read_csv(samples_csv) if samples_csv.exists() else None
    trajectories = pd.concat([trajectory_frame(sde).assign(sde=sde) for sde in results.sde.unique()])
    path = write_report(results, output, command=" ".join(sys.argv), samples=samples,
                        trajectories=trajectories)
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
