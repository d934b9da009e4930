"""The convergence study, the order fit, resume, the CLI and the report."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sdebench.studies.convergence as convergence
import torch
from sdebench.reports.html import render_report
from sdebench.studies.convergence import StudyConfig, run_study
from sdebench.studies.order import fit_order, order_table, verdict
from sdebench.studies.store import ResultStore

ROOT = Path(__file__).resolve().parents[1]


def test_fit_order_recovers_a_known_slope():
    steps = np.array([8, 16, 32, 64, 128])
    errors = 3.0 * steps**-2.5
    order, half_width = fit_order(steps, errors)
    assert order == pytest.approx(2.5, abs=1e-12)
    assert half_width < 1e-10


def test_fit_order_confidence_interval_covers_noisy_slope():
    """Slope 1.5 with log-normal noise of SD 0.05: the 95% CI covers 1.5 in ≥ 90 of 100 trials
    (binomial(100, 0.95): P(< 90) ≈ 0.006)."""
    rng = np.random.default_rng(0)
    steps = np.array([8, 16, 32, 64, 128, 256])
    covered = 0
    for _ in range(100):
        errors = steps**-1.5 * np.exp(rng.normal(0, 0.05, steps.size))
        order, half_width = fit_order(steps, errors)
        covered += abs(order - 1.5) <= half_width
    assert covered >= 90


def test_verdicts():
    assert verdict(2.05, 0.01, 2) == "PASS"
    assert verdict(1.5, 0.01, 2) == "FAIL"
    assert verdict(3.0, 0.01, 2) == "ABOVE"
    assert verdict(1.0, 0.01, None) == "N/A"


def _config(**kwargs):
    defaults = dict(sdes=["vp"], samplers=["euler", "euler_maruyama"], steps=[16, 32, 64],
                    dim=2, batch=16)
    return StudyConfig(**{**defaults, **kwargs})


def test_study_returns_tidy_rows():
    frame = run_study(_config(), progress=False)
    expected = {"sde", "problem", "sampler", "grid", "steps", "nfe", "step_size", "seed", "metric",
                "value", "stderr", "wall_time", "device", "dtype"}
    assert expected <= set(frame.columns)
    assert set(frame.metric) == {"w2", "kl", "strong_error"}
    assert (frame[frame.sampler == "euler"].metric != "strong_error").all()
    table = order_table(frame)
    assert set(table.sampler) == {"euler", "euler_maruyama"}


def test_resume_neither_recomputes_nor_duplicates(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    run_study(_config(steps=[16, 32]), store, progress=False)
    calls = []
    original = convergence.run_unit
    monkeypatch.setattr(convergence, "run_unit", lambda *a: calls.append(a[1]) or original(*a))
    resumed = run_study(_config(steps=[16, 32, 64]), ResultStore(tmp_path), progress=False)
    assert [unit["steps"] for unit in calls] == [64, 64]  # one new step count × two samplers
    on_disk = pd.read_csv(tmp_path / "results.csv")
    assert len(on_disk) == len(on_disk.drop_duplicates(["sampler", "steps", "metric"]))
    assert len(resumed) == len(on_disk)


def test_gmm_study_reports_the_monte_carlo_floor():
    frame = run_study(_config(problem="gmm", samplers=["heun"], steps=[8, 16], batch=512),
                      progress=False)
    assert {"nll", "nll_exact", "sliced_w2", "sliced_w2_floor"} <= set(frame.metric)
    assert frame[frame.metric == "nll"].stderr.gt(0).all()


def test_diverging_runs_are_recorded(monkeypatch):
    from sdebench.solvers.base import NonFiniteError

    def explode(*args):
        raise NonFiniteError("model returned NaN/Inf at step 0 (t = 1)")

    monkeypatch.setattr(convergence, "_measure", explode)
    frame = run_study(_config(samplers=["euler"], steps=[4]), progress=False)
    assert list(frame.metric) == ["diverged"] and math.isinf(frame.value.iloc[0])


def _cli(*args, cwd):
    return subprocess.run([sys.executable, str(ROOT / "experiments" / "convergence.py"), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


BAD_ARGUMENTS = [["--sde", "nope"], ["--samplers", "euler,nope"], ["--steps", "0,4"],
                 ["--steps", "a"], ["--dim", "0"], ["--batch", "1"], ["--device", "tpu"]]
if not torch.cuda.is_available():
    BAD_ARGUMENTS.append(["--device", "cuda"])


@pytest.mark.parametrize("args", BAD_ARGUMENTS, ids=" ".join)
def test_cli_rejects_bad_arguments_without_writing(tmp_path, args):
    result = _cli(*args, "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 2 and "error" in result.stderr
    assert not (tmp_path / "out").exists()


def test_cli_rejects_a_file_as_output_directory(tmp_path):
    result = _cli("--out", str(tmp_path / "results.csv"), cwd=tmp_path)
    assert result.returncode == 2 and "--out is a directory" in result.stderr
    assert not (tmp_path / "results.csv").exists()


def test_cli_runs_writes_results_and_report(tmp_path):
    out = tmp_path / "out"
    result = _cli("--sde", "ve", "--samplers", "heun,ddim", "--steps", "8,16,32", "--quiet",
                  "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "PASS" in result.stdout and (out / "results.csv").exists()
    assert "report:" in result.stdout and (out / "report.html").exists()


def test_report_is_self_contained():
    frame = run_study(_config(), progress=False)
    page = render_report(frame, command="test")
    assert page.count("<svg") == 2 and "<script" not in page and "http" not in page.split("<svg")[0]
    assert "PASS" in page and "Environment" in page


def test_report_command_renders_saved_results(tmp_path):
    run_study(_config(steps=[8, 16]), ResultStore(tmp_path), progress=False)
    result = subprocess.run([sys.executable, str(ROOT / "experiments" / "report.py"), str(tmp_path)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "report.html").read_text()
    assert page.count("<svg") == 3  # error vs NFE, work–precision, trajectories
