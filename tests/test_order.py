"""Order fits and verdicts: a verdict needs evidence — enough step counts above the error floor
and a narrow confidence interval — or it says INCONCLUSIVE and why."""

import numpy as np
import pandas as pd
import pytest

from sdebench.studies.config import StudyConfig
from sdebench.studies.convergence import run_study
from sdebench.studies.order import MAX_HALF_WIDTH, fit_order, order_table, verdict


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
    # a CI that contains the declared order but is wider than the bound decides nothing
    assert verdict(2.3, 0.4, 2) == "INCONCLUSIVE"
    # a CI that excludes the declared order is evidence, however wide
    assert verdict(1.37, 0.5, 4) == "FAIL"


def _rows(steps, values, declared=2.0, floor=np.nan, stderr=np.nan):
    n = len(steps)
    return pd.DataFrame({"config_id": ["c"] * n, "schedule": ["vp"] * n, "problem": ["g"] * n,
                         "sampler": ["s"] * n, "metric": ["w2"] * n, "metric_order": ["order"] * n,
                         "steps": steps, "value": values, "floor": [floor] * n,
                         "floor_kind": ["round-off"] * n, "stderr": [stderr] * n,
                         "status": ["ok"] * n, "declared_order": [declared] * n,
                         "declared_strong_order": [np.nan] * n, "order_note": [""] * n})


def test_two_step_counts_are_inconclusive_with_the_reason():
    """rk4 at --steps 1,2 (measured 1.37, declared 4) used to PASS on an infinite CI."""
    table = order_table(_rows([1, 2], [0.3, 0.116], declared=4.0))
    assert table.verdict.iloc[0] == "INCONCLUSIVE"
    assert table.reason.iloc[0] == "2 usable step counts"


def test_runs_that_raised_are_named_in_the_reason():
    """Every diffusers peer on CUDA raised (a device mix-up, found on an H100); the verdict
    read "0 usable step counts" with nothing to say why."""
    rows = _rows([8, 16, 32], [np.nan, np.nan, 0.01]).assign(
        status=["failed", "failed", "ok"],
        error=["Traceback ...\nRuntimeError: Trying to pass too many CPU scalars"] * 2 + [""])
    table = order_table(rows)
    assert table.verdict.iloc[0] == "INCONCLUSIVE"
    assert table.reason.iloc[0] == ("1 usable step count; failed: RuntimeError: Trying to pass "
                                    "too many CPU scalars at 8, 16 steps")


def test_a_wide_ci_is_inconclusive_with_its_width():
    table = order_table(_rows([2, 3, 4], [1e-1, 1e-2, 8e-3]))
    assert table.verdict.iloc[0] == "INCONCLUSIVE"
    assert table.ci95.iloc[0] > MAX_HALF_WIDTH and table.reason.iloc[0].startswith("CI ±")


def test_points_at_the_floor_are_dropped_and_named():
    steps = [16, 32, 64, 128, 256]
    values = [2.0 ** -(2 * k) for k in range(4, 9)]  # order 2
    table = order_table(_rows(steps, values, floor=2.0 ** -13))
    assert table.verdict.iloc[0] == "PASS" and table.fit_steps.iloc[0] == "16-64"
    assert table.dropped.iloc[0] == "128, 256: at the round-off floor"


def test_monte_carlo_floors_need_a_margin():
    """Sliced W₂ of ddim_eta0.5 on the 2-D GMM at 16–64 steps (0.078, 0.066, 0.063 against a
    Monte Carlo floor of 0.053) fitted order 0.16 ± 0.65: a FAIL from sampling noise alone.
    Values below 3 × a Monte Carlo floor are noise-dominated and dropped."""
    rows = _rows([16, 32, 64, 128, 256], [0.078381, 0.066089, 0.062989, 0.041485, 0.044626],
                 declared=1.0, floor=0.052813)
    rows["floor_kind"] = "Monte Carlo"
    table = order_table(rows)
    assert table.verdict.iloc[0] == "INCONCLUSIVE" and table.points.iloc[0] == 0
    assert "5 at the error floor" in table.reason.iloc[0]


def test_points_within_three_standard_errors_of_zero_are_dropped():
    table = order_table(_rows([16, 32, 64, 128], [1e-2, 2.5e-3, 6.25e-4, 1.6e-4], stderr=1e-4))
    assert "128: within 3 standard errors of 0" in table.dropped.iloc[0]


def test_rk4_at_two_step_counts_in_a_real_study_is_inconclusive():
    orders = run_study(StudyConfig(schedules=["vp"], samplers=["rk4"], steps=[1, 2]),
                       progress=False, trajectories=False).orders
    assert orders.verdict.iloc[0] == "INCONCLUSIVE" and orders.points.iloc[0] == 2


def test_float32_studies_drop_round_off_instead_of_failing():
    """float32 rk4 and DPM-Solver-3 at 32–512 steps used to FAIL (rk4 −0.48, dpm_solver_3 0.12)
    against float64's fixed 1e-12 cut-off; the floor now follows the dtype."""
    orders = run_study(StudyConfig(schedules=["vp"], samplers=["rk4", "dpm_solver_3", "euler"],
                                   steps=[32, 64, 128, 256, 512], dtype="float32"),
                       progress=False, trajectories=False).orders
    w2 = orders[orders.metric == "w2"].set_index("sampler")
    assert not (w2.verdict == "FAIL").any(), w2[["measured_order", "verdict", "dropped"]]
    assert w2.loc["rk4", "verdict"] == "INCONCLUSIVE" and "floor" in w2.loc["rk4", "reason"]
    assert w2.loc["euler", "verdict"] == "PASS"
