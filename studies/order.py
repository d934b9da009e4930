"""Order estimation from a tidy DataFrame: log-log least squares with a t-based confidence
interval on the slope, compared with the declared order.

The verdict uses tolerance max(CI half-width, 0.1): with exact-law errors the residuals of the fit
are pre-asymptotic curvature, not noise, and 0.1 is the allowance for the O(h) drift of local
slopes in the fitted range (see tests/test_solver_orders.py).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

MIN_ALLOWANCE = 0.1


def fit_order(steps, errors, confidence: float = 0.95) -> tuple[float, float]:
    """(order, CI half-width) from the slope of log(error) against log(steps)."""
    x, y = np.log(np.asarray(steps, float)), np.log(np.asarray(errors, float))
    if x.size < 2:
        raise ValueError(f"need at least 2 points to fit an order, got {x.size}")
    fit = stats.linregress(x, y)
    if x.size < 3:
        return -fit.slope, math.inf
    half_width = stats.t.ppf(0.5 + confidence / 2, x.size - 2) * fit.stderr
    return -fit.slope, float(half_width)


VERDICT_LEGEND = (
    "PASS: within max(95% CI, 0.1) of the declared order. ABOVE: faster than declared on this "
    "problem (the declared order is a worst-case bound; Euler–Maruyama on VE with Gaussian data "
    "has a first-order error coefficient that is only a small boundary term, theory/em_error.py, "
    "so its O(h²) term dominates below about 10⁴ steps). FAIL: slower than declared. "
    "N/A: no order declared (see note)."
)


def verdict(measured: float, half_width: float, declared: float | None) -> str:
    """PASS within tolerance; ABOVE if clearly faster (the declared order is a worst-case bound);
    FAIL if clearly slower; N/A when no order is declared."""
    if declared is None or (isinstance(declared, float) and math.isnan(declared)):
        return "N/A"
    tolerance = max(half_width, MIN_ALLOWANCE)
    if abs(measured - declared) <= tolerance:
        return "PASS"
    return "ABOVE" if measured > declared else "FAIL"


def order_table(results: pd.DataFrame, metric: str = "w2", fit_points: int = 3) -> pd.DataFrame:
    """One row per (sde, problem, sampler, grid): measured order over the ``fit_points`` largest
    step counts whose error exceeds 1e-12 (below it round-off dominates), CI and verdict."""
    rows = []
    keys = ["sde", "problem", "sampler", "grid"]
    for key, group in results[results.metric == metric].groupby(keys, sort=False):
        group = group.sort_values("steps")
        usable = group[group.value > 1e-12].tail(fit_points)
        declared = group.declared_order.iloc[0]
        declared = None if pd.isna(declared) else float(declared)
        if len(usable) < 2:
            measured, half_width = math.nan, math.nan
        else:
            measured, half_width = fit_order(usable.steps, usable.value)
        rows.append({
            **dict(zip(keys, key, strict=True)),
            "metric": metric,
            "fit_steps": f"{int(usable.steps.min())}-{int(usable.steps.max())}" if len(usable) else "",
            "measured_order": measured,
            "ci95": half_width,
            "declared_order": declared,
            "verdict": "N/A" if math.isnan(measured) else verdict(measured, half_width, declared),
            "note": group.order_note.iloc[0],
        })
    return pd.DataFrame(rows)
