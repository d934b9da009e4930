"""A convergence study from Python with the plugin of my_plugin.py:

    python examples/plugin_study.py [--out DIR]

The user sampler (Ralston) and the user schedule (σ = 20 erf(t)) run on exact-law Gaussian data
(W₂, and the user's own metric) and on the user's two-point data (Monte Carlo metrics); the
report shows each configuration in its own section. Exits 1 if a verdict is FAIL.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import my_plugin  # noqa: E402, F401  (importing registers the plugin's entries)

from sdebench.experiments.report import render_directory  # noqa: E402
from sdebench.studies import ResultStore, StudyConfig, run_study  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="results/examples/plugin_study")
    args = parser.parse_args(argv)
    store = ResultStore(args.out)
    studies = [
        StudyConfig(schedules=["erf_ve"], samplers=["ralston", "heun"], steps=[32, 64, 128, 256],
                    problem="gaussian", metrics=["w2", "second_moment_error"]),
        StudyConfig(schedules=["erf_ve"], samplers=["ralston", "euler"], steps=[2, 4, 8, 16],
                    problem="two_point", dim=2, batch=8192,
                    metrics=["second_moment_error", "nll"]),
    ]
    orders = [run_study(config, store, progress=False, command="examples/plugin_study.py").orders
              for config in studies]
    for table in orders:
        print(table[["schedule", "problem", "sampler", "metric", "points", "measured_order",
                     "ci95", "verdict", "reason"]].to_string(index=False))
    print(f"report: {render_directory(store.directory)}")
    return 1 if any((table.verdict == "FAIL").any() for table in orders) else 0


if __name__ == "__main__":
    raise SystemExit(main())
