"""Benchmarks over the project's history: asv's stored results as one tidy frame and a slowdown
check of one commit against another (the page of every benchmark across commits:
:func:`sdebench.reports.history.history_page`).

asv keeps one JSON file per (commit, environment) in ``<results_dir>/<machine>/`` (format 2:
``result_columns`` names the columns of each benchmark's entry in ``results``; its ``result``
holds one value per combination of its ``params``, their Cartesian product in order; a failed or
skipped combination is null). :func:`load_results` reads them all into one row per (machine,
commit, benchmark, parameters).

The slowdown check (:func:`compare`) is run on the floor-ratio benchmarks
(``benchmarks.FloorRatio``): wall / (NFE × one model call) measured within one round, so a load
that slows the whole machine cancels. A ratio that grew by more than its measured noise between
two commits is flagged. The noise threshold of a benchmark is set from repeated runs of the same
commit (:func:`noise_thresholds`): the largest relative deviation of a run from their median,
times :data:`NOISE_MARGIN`, and never below :data:`MIN_THRESHOLD`. CI may print the comparison
but never fails on it: machines are shared and noisy, and CI's outcome must not depend on chance.
"""

from __future__ import annotations

import itertools
import json
import math
import subprocess
from pathlib import Path

import pandas as pd

NOISE_MARGIN = 1.5
"""A slowdown is flagged beyond 1.5 × the largest deviation seen among repeated runs of one
commit: a repeat must exceed the worst noise observed by half as much again."""
MIN_THRESHOLD = 0.05
"""No threshold below 5 %: a handful of calibration runs can look quieter than the machine is."""
RATIO_BENCHMARKS = "benchmarks.FloorRatio.track_floor_ratio"


def _entries(path: Path) -> list[dict]:
    """The rows of one asv result file (one per benchmark and parameter combination)."""
    record = json.loads(path.read_text())
    columns = record.get("result_columns", [])
    rows = []
    for benchmark, entry in record.get("results", {}).items():
        fields = dict(zip(columns, entry, strict=False))
        values = fields.get("result") or []
        params = fields.get("params") or []
        combinations = list(itertools.product(*params)) if params else [()]
        for combination, value in zip(combinations, values, strict=False):
            rows.append({"machine": path.parent.name, "commit": record["commit_hash"],
                         "date": pd.to_datetime(record.get("date"), unit="ms"),
                         "env": record.get("env_name", ""), "benchmark": benchmark,
                         "params": ", ".join(str(p).strip("'") for p in combination),
                         "value": math.nan if value is None else float(value)})
    return rows


def load_results(results_dir: str | Path) -> pd.DataFrame:
    """Every stored asv result under ``results_dir`` as one tidy frame: machine, commit, date,
    env, benchmark, params (the parameter values, comma-joined), value (NaN where it failed)."""
    files = [path for path in Path(results_dir).glob("*/*.json")
             if path.name not in ("machine.json", "benchmarks.json")]
    rows = [row for path in sorted(files) for row in _entries(path)]
    columns = ["machine", "commit", "date", "env", "benchmark", "params", "value"]
    return pd.DataFrame(rows, columns=columns)


def commit_order(commits, repo: str | Path = ".") -> list[str]:
    """``commits`` oldest first, in the repository's first-parent history (commits not in it
    keep their given order, at the end)."""
    history = subprocess.run(["git", "-C", str(repo), "rev-list", "--first-parent", "--reverse",
                              "HEAD"], capture_output=True, text=True, check=True).stdout.split()
    rank = {commit: i for i, commit in enumerate(history)}
    return sorted(dict.fromkeys(commits), key=lambda c: rank.get(c, len(rank)))


def noise_thresholds(repeats: pd.DataFrame) -> pd.Series:
    """(benchmark, params) → relative threshold from repeated runs of one commit (``repeats``:
    rows of :func:`load_results` shape, one per run, a ``run`` column telling runs apart):
    max |value / median − 1| over the runs × :data:`NOISE_MARGIN`, at least :data:`MIN_THRESHOLD`."""
    finite = repeats[repeats.value.notna()]
    grouped = finite.groupby(["benchmark", "params"]).value
    deviation = grouped.transform(lambda v: (v / v.median() - 1).abs())
    worst = deviation.groupby([finite.benchmark, finite.params]).max()
    return (worst * NOISE_MARGIN).clip(lower=MIN_THRESHOLD).rename("threshold")


def compare(results: pd.DataFrame, base: str, head: str, thresholds: pd.Series,
            benchmark: str = RATIO_BENCHMARKS) -> pd.DataFrame:
    """Per parameter combination of ``benchmark``: its value at ``base`` and at ``head``
    (commit hashes or unique prefixes; a commit's runs averaged), ``change`` = head / base − 1,
    the threshold and the verdict: "slower" (change above the threshold), "faster" (below
    minus it), "within noise", or "missing" (no value at one of the two commits, or no
    threshold measured)."""
    rows = results[results.benchmark == benchmark]
    def at(commit):
        values = rows[rows.commit.str.startswith(commit)]
        if values.empty:
            raise ValueError(f"no results of {benchmark} recorded at commit {commit!r}: record "
                             "them with `asv run -E existing:same --bench FloorRatio "
                             "--set-commit-hash <hash>` with that commit installed, or with "
                             "`sdebench perf record`")
        if values.commit.nunique() > 1:
            raise ValueError(f"commit prefix {commit!r} is ambiguous: "
                             f"{', '.join(sorted(values.commit.unique()))}")
        return values.groupby("params").value.mean()

    before, after = at(base), at(head)
    table = pd.DataFrame({"base": before, "head": after}).sort_index()
    limits = thresholds.xs(benchmark, level="benchmark") if benchmark in \
        thresholds.index.get_level_values("benchmark") else pd.Series(dtype=float)
    table["threshold"] = limits.reindex(table.index)
    table["change"] = table["head"] / table["base"] - 1
    table["verdict"] = [
        "missing" if not (math.isfinite(change) and math.isfinite(limit)) else
        "slower" if change > limit else "faster" if change < -limit else "within noise"
        for change, limit in zip(table.change.fillna(math.nan), table.threshold.fillna(math.nan),
                                 strict=True)]
    return table.rename_axis("params").reset_index()
