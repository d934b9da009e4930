"""Performance over time (sdebench.studies.performance, experiments/perf.py), fed recorded results: asv
result files are parsed into tidy rows, and the slowdown check flags a 30 % slower floor ratio
while the recorded repeat runs of one commit all pass. No wall clock is read here."""

import json
from pathlib import Path

import pandas as pd
import pytest

from sdebench.experiments.perf import NOISE_FILE, _thresholds
from sdebench.reports.history import history_page
from sdebench.studies.performance import (
    MIN_THRESHOLD,
    NOISE_MARGIN,
    RATIO_BENCHMARKS,
    compare,
    load_results,
    noise_thresholds,
)

ROOT = Path(__file__).resolve().parents[1]
RECORD = json.loads((ROOT / NOISE_FILE).read_text())


def _asv_file(folder: Path, commit: str, ratios: dict, date: int) -> None:
    """One asv result file (format 2) holding the floor-ratio benchmark's values."""
    names = list(ratios)
    record = {"commit_hash": commit, "env_name": "existing-py", "date": date, "version": 2,
              "result_columns": ["result", "params", "version", "started_at", "duration"],
              "results": {RATIO_BENCHMARKS: [[ratios[n] for n in names], [[f"'{n}'" for n in names]],
                                             "v", date, 1.0],
                          "benchmarks.Theory.time_lambdify_vp": [[1.08], [], "v", date, 1.0]}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{commit[:8]}-existing-py.json").write_text(json.dumps(record))


def _medians() -> dict:
    runs = pd.DataFrame(RECORD["runs"])
    return runs.median().to_dict()


def test_asv_results_become_one_row_per_benchmark_and_parameter(tmp_path):
    _asv_file(tmp_path / "vm", "a" * 40, {"euler": 1.1, "heun": 1.2}, 1_700_000_000_000)
    frame = load_results(tmp_path).set_index(["benchmark", "params"])
    assert frame.loc[(RATIO_BENCHMARKS, "heun"), "value"] == 1.2
    assert frame.loc[("benchmarks.Theory.time_lambdify_vp", ""), "value"] == 1.08
    assert len(frame) == 3 and set(frame.machine) == {"vm"}


def test_thresholds_are_the_recorded_noise_with_a_margin():
    thresholds = _thresholds(ROOT / NOISE_FILE).xs(RATIO_BENCHMARKS, level="benchmark")
    runs = pd.DataFrame(RECORD["runs"])
    for sampler in runs:
        deviation = (runs[sampler] / runs[sampler].median() - 1).abs().max()
        assert thresholds[sampler] == pytest.approx(max(NOISE_MARGIN * deviation, MIN_THRESHOLD))


def test_a_30_percent_slowdown_is_flagged_and_recorded_repeats_are_not(tmp_path):
    """Base: the median of the recorded runs; head: that median × 1.3 for one sampler. Each
    recorded run against the median stays within its threshold by construction of the margin,
    so this test checks that the recorded noise leaves room to see a 30 % slowdown."""
    thresholds = _thresholds(ROOT / NOISE_FILE)
    base = _medians()
    slowed = sorted(base)[0]
    _asv_file(tmp_path / "vm", "b" * 40, base, 1)
    _asv_file(tmp_path / "vm", "c" * 40, {**base, slowed: 1.3 * base[slowed]}, 2)
    for k, run in enumerate(RECORD["runs"]):
        _asv_file(tmp_path / "vm", f"{k}" * 40, run, 3 + k)
    results = load_results(tmp_path)
    table = compare(results, "b" * 8, "c" * 8, thresholds).set_index("params")
    assert table.loc[slowed, "verdict"] == "slower", table.loc[slowed]
    assert (table.drop(index=slowed).verdict == "within noise").all()
    for k in range(len(RECORD["runs"])):
        repeat = compare(results, "b" * 8, f"{k}" * 8, thresholds)
        assert (repeat.verdict == "within noise").all(), repeat


def test_a_benchmark_missing_at_one_commit_is_named_not_judged(tmp_path):
    thresholds = noise_thresholds(pd.DataFrame({"benchmark": RATIO_BENCHMARKS,
                                                "params": ["euler", "euler"], "run": [0, 1],
                                                "value": [1.0, 1.02]}))
    _asv_file(tmp_path / "vm", "d" * 40, {"euler": 1.0}, 1)
    _asv_file(tmp_path / "vm", "e" * 40, {"euler": 1.0, "heun": 2.0}, 2)
    table = compare(load_results(tmp_path), "d", "e", thresholds).set_index("params")
    assert table.loc["heun", "verdict"] == "missing"
    assert table.loc["euler", "threshold"] == MIN_THRESHOLD  # 1.5 × 2 % < 5 %


def test_history_page_draws_every_benchmark_across_commits(tmp_path):
    for k in range(3):
        _asv_file(tmp_path / "vm", f"{k}" * 40, {"euler": 1.0 + k / 10}, k)
    results = load_results(tmp_path)
    page = history_page(results, [f"{k}" * 40 for k in range(3)], "history")
    assert page.count("<svg") == 2 and "<script" not in page
    assert "00000000" in page and "22222222" in page  # commits on the x axis


def test_a_commit_without_results_is_named(tmp_path):
    _asv_file(tmp_path / "vm", "f" * 40, {"euler": 1.0}, 1)
    thresholds = _thresholds(ROOT / NOISE_FILE)
    with pytest.raises(ValueError, match="no results of .* at commit '0123'"):
        compare(load_results(tmp_path), "f", "0123", thresholds)
