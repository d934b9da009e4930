"""Render a report from saved results:  python experiments/report.py results/convergence"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Render an HTML report from a study's results.csv")
    parser.add_argument("results", help="a results.csv file or the study's --out directory")
    parser.add_argument("--output", help="report path (default: report.html beside the results)")
    args = parser.parse_args(argv)
    source = Path(args.results)
    csv = source / "results.csv" if source.is_dir() else source
    if not csv.exists():
        parser.error(f"no results at {csv}")
    import pandas as pd

    from reports.html import write_report

    output = Path(args.output) if args.output else csv.with_name("report.html")
    samples_csv = csv.with_name("samples.csv")
    samples = pd.read_csv(samples_csv) if samples_csv.exists() else None
    path = write_report(pd.read_csv(csv), output, command=" ".join(sys.argv), samples=samples)
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())
