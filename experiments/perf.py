"""Performance over time: asv's recorded benchmarks across commits, and a slowdown check.

    sdebench perf record --commits 20 --python PY   # asv over the last 20 commits, into .asv/
    sdebench perf history                 # .asv/history.html: every benchmark across commits
    sdebench perf compare BASE [HEAD]     # floor ratios of HEAD against BASE, beyond their noise
    sdebench perf calibrate --runs 5      # measure that noise: benchmarks/floor_ratio_noise.json

Thin wrapper over :mod:`sdebench.studies.performance`. ``compare`` prints one line per sampler and exits
1 when one is slower beyond its threshold (CI prints it and never fails on it: a timing on a
shared machine is not a verdict CI may depend on).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

NOISE_FILE = Path("benchmarks/floor_ratio_noise.json")


def _thresholds(path: Path):
    import pandas as pd

    from sdebench.studies.performance import RATIO_BENCHMARKS, noise_thresholds

    record = json.loads(path.read_text())
    runs = pd.DataFrame([{"benchmark": RATIO_BENCHMARKS, "params": sampler, "run": run,
                          "value": value}
                         for run, ratios in enumerate(record["runs"])
                         for sampler, value in ratios.items()])
    return noise_thresholds(runs)


def calibrate(runs: int, output: Path, progress: bool) -> None:
    """Run the floor-ratio benchmark's table ``runs`` times on this commit and record the
    ratios, the machine and the commit (the thresholds are derived from them when read)."""
    import platform

    from sdebench.solvers.catalogue import BUILTIN_SAMPLERS
    from sdebench.studies.provenance import row_provenance
    from sdebench.studies.store import atomic_write_text
    from sdebench.studies.timing import FLOOR_RATIO_BENCHMARK, floor_ratio_table, tune_glibc_malloc

    tune_glibc_malloc()
    samplers = [name for name in BUILTIN_SAMPLERS if name != "rk45"]
    recorded = []
    for run in range(runs):
        table, _ = floor_ratio_table(samplers, **FLOOR_RATIO_BENCHMARK, progress=progress)
        recorded.append(dict(zip(table.sampler, table.floor_ratio, strict=True)))
        print(f"run {run + 1}/{runs} done", file=sys.stderr)
    atomic_write_text(output, json.dumps(
        {"about": "floor ratios of benchmarks.FloorRatio, repeated on one commit: the noise "
                  "that `sdebench perf compare` thresholds are derived from "
                  "(sdebench.studies.performance.noise_thresholds)",
         "configuration": FLOOR_RATIO_BENCHMARK, "machine": platform.node(), "cpu": platform.processor(),
         **row_provenance(), "runs": recorded}, indent=1) + "\n")


HISTORY_BENCHMARKS = r"SamplerSpeed\.time_sample|ExactLawStudy|Theory|Accuracy"
"""What ``record`` runs by default: the benchmarks whose code exists at every recorded commit and
that take minutes, not hours, over 20 commits on two cores."""


def record(commits: int, python: str, bench: str, quick: bool) -> list[str]:
    """For each of the last ``commits`` first-parent commits, oldest first: install that
    commit's sdebench (no dependencies) into the environment of ``python`` and run this
    checkout's asv benchmarks matching ``bench`` against it, recorded under the commit's hash.
    ``python`` must be a separate environment (its sdebench is replaced); returns the commits
    whose benchmarks ran."""
    import subprocess
    import tempfile

    git = ["git", "rev-list", "--first-parent", f"--max-count={commits}", "HEAD"]
    hashes = subprocess.run(git, capture_output=True, text=True, check=True).stdout.split()[::-1]
    done = []
    with tempfile.TemporaryDirectory(prefix="sdebench-history-") as scratch:
        for commit in hashes:
            tree = Path(scratch) / commit[:12]
            subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(tree), commit],
                           check=True)
            try:
                subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps",
                                "--force-reinstall", str(tree)], check=True)
                asv = ["asv", "run", "-E", f"existing:{python}", "--set-commit-hash", commit,
                       "--bench", bench, *(["--quick"] if quick else [])]
                if subprocess.run(asv).returncode in (0, 2):  # 2: a benchmark failed there
                    done.append(commit)
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], check=True)
    return done


def main(argv=None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    recording = commands.add_parser("record", help="run asv benchmarks at each of the last N "
                                                   "commits (into asv's results_dir)")
    recording.add_argument("--commits", type=int, default=20)
    recording.add_argument("--python", required=True,
                           help="python of a separate environment with sdebench's dependencies "
                                "(its sdebench is replaced by each commit's)")
    recording.add_argument("--bench", default=HISTORY_BENCHMARKS, help="asv --bench regex")
    recording.add_argument("--full", action="store_true", help="asv's full timing, not --quick")
    history = commands.add_parser("history", help="an offline page of every benchmark across "
                                                  "the commits asv recorded")
    history.add_argument("--results", default=".asv/results", help="asv's results_dir")
    history.add_argument("--output", default=".asv/history.html")
    compare = commands.add_parser("compare", help="floor ratios of HEAD against BASE")
    compare.add_argument("base")
    compare.add_argument("head", nargs="?", default=None, help="default: git HEAD")
    compare.add_argument("--results", default=".asv/results", help="asv's results_dir")
    compare.add_argument("--noise", default=str(NOISE_FILE), help="the calibration record")
    calibration = commands.add_parser("calibrate", help="measure the floor ratios' noise")
    calibration.add_argument("--runs", type=int, default=5)
    calibration.add_argument("--output", default=str(NOISE_FILE))
    calibration.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    import subprocess

    from sdebench.reports.history import history_page
    from sdebench.studies.performance import commit_order, load_results
    from sdebench.studies.performance import compare as compare_commits

    if args.command == "calibrate":
        if args.runs < 2:
            parser.error(f"--runs must be at least 2 to measure a spread, got {args.runs}")
        calibrate(args.runs, Path(args.output), not args.quiet)
        print(f"noise record: {args.output}")
        return 0
    if args.command == "record":
        if args.commits < 1:
            parser.error(f"--commits must be at least 1, got {args.commits}")
        done = record(args.commits, args.python, args.bench, quick=not args.full)
        print(f"recorded {len(done)} of {args.commits} commits; page: sdebench perf history")
        return 0
    results = load_results(args.results)
    if results.empty:
        parser.error(f"no asv results under {args.results!r}: record some first (README, "
                     "'Speed and benchmarks')")
    if args.command == "history":
        order = commit_order(results.commit.unique())
        Path(args.output).write_text(history_page(results, order, "sdebench benchmarks by commit"))
        print(f"history: {args.output} ({len(order)} commits, "
              f"{results.benchmark.nunique()} benchmarks)")
        return 0
    noise = Path(args.noise)
    if not noise.is_file():
        parser.error(f"no noise record {args.noise!r}: run `sdebench perf calibrate` first")
    head = args.head or subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True,
                                       text=True, check=True).stdout.strip()
    try:
        table = compare_commits(results, args.base, head, _thresholds(noise))
    except ValueError as error:
        parser.error(str(error))
    print(f"floor ratios, {args.base[:8]} → {head[:8]} (threshold: 1.5 × the largest deviation "
          f"of repeated runs in {args.noise}, at least 5%):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    slower = table[table.verdict == "slower"]
    if not slower.empty:
        print(f"slower beyond noise: {', '.join(slower.params)}", file=sys.stderr)
    return 1 if not slower.empty else 0


if __name__ == "__main__":
    raise SystemExit(main())
