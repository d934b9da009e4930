"""Order estimation with evidence: log-log least squares over the asymptotic points, a
t-based 95 % confidence interval on the slope, and a verdict that says why.

Which points: rows of one configuration (``config_id``), sampler and metric, with a finite
positive value above the row's floor (stated per metric in :mod:`sdebench.studies.metrics`)
and above three standard errors; of those the ``FIT_POINTS`` largest step counts (the
asymptotic end). A round-off floor is already a bound with a safety factor, so a value above it
counts; a Monte Carlo floor F is the level that sampling noise alone reaches, and noise adds to
the discretisation error roughly in quadrature (√(D² + F²)), so a value counts only above
``MONTE_CARLO_MULTIPLE`` · F = 3F, where the noise makes less than 6 % of it (a sliced-W₂
point at 1.2 F once gave a sampler a FAIL from noise alone).

Verdicts:

* N/A — the sampler declares no order for this metric (its note says why);
* INCONCLUSIVE — fewer than ``FIT_POINTS`` usable points, or a CI half-width above
  ``MAX_HALF_WIDTH``; the reason is stated ("2 step counts", "CI ±3.1", "2 points at the
  round-off floor");
* PASS — |measured − declared| ≤ max(CI, ``MIN_ALLOWANCE``) with a CI of at most
  ``MAX_HALF_WIDTH``. The allowance 0.1 covers the O(h) drift of local slopes in the fitted
  range: with exact-law errors the residuals are pre-asymptotic curvature, not noise
  (tests/test_solver_orders.py);
* ABOVE / FAIL — the declared order lies outside max(CI, allowance): faster (the declared order
  is a worst-case bound; Euler–Maruyama on VE, theory/em_error.py) or slower than declared.

No PASS, ABOVE or FAIL before the asymptotic regime. An error e(h) = C h^p (1 + c h^q + …) has
local slopes p_i (between neighbouring step counts) that approach p with a drift shrinking by
2^-q per halving of h. For three points a factor 2 apart the least-squares slope is the mean of
the two local slopes p₁, p₂, and with q ≥ 1 the remaining correction of p₂ is at most
|p₂ − p₁|, so the fit lies within 1.5 |p₂ − p₁| of p: the allowance 0.1 holds when the local
slopes agree within ``ASYMPTOTIC_DRIFT`` = 0.1 / 1.5 = 1/15 (a lack of agreement is the trend
in the fit's residuals: for log-equally spaced points their second difference is the drift).
The check reads the local slopes of the fitted points and of the usable point before them:

1. *settled*: their spread is at most 1/15, plus twice the spread's standard error where the
   errors carry one (Monte Carlo; deterministic errors from shared start points carry none);
2. *settling*: three slopes whose drifts d₁, d₂ keep their sign and shrink (r = d₂/d₁ in [0, 1)),
   i.e. a correction decaying geometrically; the fit's distance from the limit is then
   |d₂|·(r/(1 − r) + ½) (the geometric tail plus half the last drift), which must be at most
   the allowance 0.1. Three slopes fix a geometric model (limit, size, ratio) with nothing left
   to test it, and a correction of two terms of opposite sign dips before it settles: edm's
   stochastic sampler on ``spectrum`` has slopes 2.11, 1.80, 1.77 at 4–32 steps and 2.00 at
   64–256. So a settling FAIL or ABOVE (a claimed defect) also needs the slope before them to
   continue the pattern (its drift d₀ of the same sign, |d₁| < |d₀|); a settling PASS does not
   (its limit agrees with the declared order either way, within the allowance);
3. otherwise (slopes that oscillate, grow apart, or drift too much) the verdict is INCONCLUSIVE
   "not yet asymptotic: local slopes …; add finer step counts".

A stiff ε-network's Euler run (slopes 0.72, 0.85, 0.81 at 128–1024 steps) is case 3: the fit
0.83 ± 0.14 would have been a FAIL. The rule is the same for exact, reference and peer rows.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

MIN_ALLOWANCE = 0.1
MAX_HALF_WIDTH = 0.25
FIT_POINTS = 3
STDERR_MULTIPLE = 3
MONTE_CARLO_MULTIPLE = 3
ASYMPTOTIC_DRIFT = MIN_ALLOWANCE / 1.5
"""The largest spread of local slopes read as settled: the 3-point fit is then within
1.5 × 1/15 = ``MIN_ALLOWANCE`` of its limit (module docstring)."""
ORDER_COLUMNS = {"order": "declared_order", "strong_order": "declared_strong_order"}


def fit_order(steps, errors, confidence: float = 0.95) -> tuple[float, float]:
    """(order, CI half-width) from the slope of log(error) against log(steps); the half-width is
    infinite with two points."""
    x, y = np.log(np.asarray(steps, float)), np.log(np.asarray(errors, float))
    if x.size < 2:
        raise ValueError(f"need at least 2 points to fit an order, got {x.size}")
    fit = stats.linregress(x, y)
    if x.size < 3:
        return -fit.slope, math.inf
    half_width = stats.t.ppf(0.5 + confidence / 2, x.size - 2) * fit.stderr
    return -fit.slope, float(half_width)


VERDICT_LEGEND = (
    f"PASS: within max(95% CI, {MIN_ALLOWANCE}) of the declared order, from at least "
    f"{FIT_POINTS} step counts above the error floor with a CI of at most ±{MAX_HALF_WIDTH}. "
    "INCONCLUSIVE: the evidence is too weak to decide (too few usable step counts, a wide CI, or "
    "errors at the round-off or Monte Carlo floor; the reason is given). ABOVE: faster than "
    "declared on this problem (the declared order is a worst-case bound, e.g. Euler–Maruyama on "
    "VE with Gaussian data, theory/em_error.py). FAIL: slower than declared. N/A: no order "
    "declared (see note)."
)
VERDICT_SUMMARY = (
    f"PASS: measured order within max(95% CI, {MIN_ALLOWANCE}) of the declared one; FAIL: "
    "slower; ABOVE: faster than declared on this problem; INCONCLUSIVE: too little evidence "
    "(reason given); N/A: no order declared. The full rules: --verbose."
)
"""The verdicts in two console lines (:data:`VERDICT_LEGEND` in full)."""


def verdict(measured: float, half_width: float, declared: float | None) -> str:
    """PASS, ABOVE, FAIL or INCONCLUSIVE for a fit (see the module docstring); N/A without a
    declared order."""
    if declared is None or (isinstance(declared, float) and math.isnan(declared)):
        return "N/A"
    if math.isnan(measured):
        return "INCONCLUSIVE"
    tolerance = max(half_width, MIN_ALLOWANCE)
    if abs(measured - declared) > tolerance:
        return "ABOVE" if measured > declared else "FAIL"
    return "PASS" if half_width <= MAX_HALF_WIDTH else "INCONCLUSIVE"


def local_slopes(steps, errors) -> np.ndarray:
    """−Δlog(error)/Δlog(steps) between neighbouring step counts (ascending, distinct)."""
    x, y = np.log(np.asarray(steps, float)), np.log(np.asarray(errors, float))
    return -np.diff(y) / np.diff(x)


def local_slope_errors(steps, errors, stderrs) -> np.ndarray:
    """Standard error of each local slope from the errors' standard errors (relative errors
    added in quadrature, independent points assumed); 0 where the errors carry none."""
    relative = np.nan_to_num(np.asarray(stderrs, float) / np.asarray(errors, float))
    return np.hypot(relative[1:], relative[:-1]) / np.diff(np.log(np.asarray(steps, float)))


def asymptotic_check(slopes: np.ndarray, slope_errors: np.ndarray, claim: str = "PASS",
                     earlier: float = math.nan) -> str:
    """"" if ``slopes`` (the last local slopes, coarse to fine) show the asymptotic regime, else
    why not (rules 1–3 of the module docstring). ``claim`` is the verdict the fit would give;
    a settling FAIL or ABOVE is confirmed only by ``earlier``, the local slope before
    ``slopes``, continuing their geometric pattern."""
    spread = float(slopes.max() - slopes.min())
    noise = 2 * float(np.hypot(slope_errors[slopes.argmax()], slope_errors[slopes.argmin()]))
    if spread <= ASYMPTOTIC_DRIFT + noise:
        return ""
    listed = ", ".join(f"{slope:.2f}" for slope in slopes)
    if slopes.size >= 3:
        first, last = slopes[-2] - slopes[-3], slopes[-1] - slopes[-2]
        ratio = last / first
        if 0 <= ratio < 1 and abs(last) * (ratio / (1 - ratio) + 0.5) <= MIN_ALLOWANCE:
            before = slopes[-3] - earlier  # NaN without an earlier slope: not confirmed
            if claim == "PASS" or (before * first > 0 and abs(first) < abs(before)):
                return ""
            return (f"not yet asymptotic: local slopes {listed} settle, but without an earlier "
                    f"slope continuing them a dip cannot be ruled out before a {claim}; add "
                    "coarser or finer step counts")
        if ratio < 0:
            return f"not yet asymptotic: local slopes {listed} oscillate; add finer step counts"
    return (f"not yet asymptotic: local slopes {listed} differ by {spread:.2f} > "
            f"{ASYMPTOTIC_DRIFT:.3f}; add finer step counts")


def usable_points(group: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, list[int]]]:
    """The rows an order may be fitted on, and the step counts dropped for each reason."""
    dropped: dict[str, list[int]] = {}
    keep = []
    for _, row in group.sort_values("steps").iterrows():
        value, floor, stderr = row["value"], row.get("floor", math.nan), row.get("stderr", math.nan)
        if row["status"] == "failed":
            error = row.get("error", "")
            reason = f"failed: {_short(error if isinstance(error, str) else '')}"
        elif row["status"] != "ok" or not math.isfinite(value) or value <= 0:
            reason = row["status"] if row["status"] != "ok" else "no error"
        elif not math.isnan(floor) and value <= floor * (
                MONTE_CARLO_MULTIPLE if row.get("floor_kind") == "Monte Carlo" else 1):
            reason = f"at the {row.get('floor_kind') or 'error'} floor"
        elif not math.isnan(stderr) and value <= STDERR_MULTIPLE * stderr:
            reason = f"within {STDERR_MULTIPLE} standard errors of 0"
        else:
            keep.append(row)
            continue
        dropped.setdefault(reason, []).append(int(row["steps"]))
    return pd.DataFrame(keep), dropped


def _short(error: str, length: int = 80) -> str:
    """The last line of an error message (the exception), cut to ``length`` characters."""
    line = (str(error).strip().splitlines() or ["no message"])[-1]
    return line if len(line) <= length else line[:length - 1] + "…"


def _inconclusive_reason(usable: pd.DataFrame, dropped: dict[str, list[int]],
                         half_width: float) -> str:
    if len(usable) < FIT_POINTS:
        floors = sum(len(steps) for reason, steps in dropped.items()
                     if reason.startswith("at the ") and reason.endswith(" floor"))
        reason = f"{len(usable)} usable step count{'s' * (len(usable) != 1)}"
        reason += f"; {floors} at the error floor" if floors else ""
        for why, steps in dropped.items():  # a run that raised or diverged says so
            if why.startswith("failed") or why == "diverged":
                reason += f"; {why} at {', '.join(map(str, steps))} steps"
        return reason
    return f"CI ±{half_width:.2g} > ±{MAX_HALF_WIDTH}"


MEASUREMENT_BASIS = ("brownian_path", "reference_solve", "sampler_source")
"""Row columns naming what the errors were measured on: a store can hold a section's rows on an
older Brownian path or reference solve, or of an older implementation of the sampler (its source
fingerprint: a re-run after a change makes new units beside the old), next to the current ones,
and those are fitted apart."""

TABLE_COLUMNS = ("config_id", "schedule", "problem", "sampler", "metric", "library", "points",
                 "fit_steps", "measured_order", "ci95", "declared_order", "verdict", "reason",
                 "local_slopes", "floor", "floor_kind", "dropped", "note", "score", "against",
                 "reference_margin")
"""The order table's columns: the same header with no fitted rows (an empty study)."""


def order_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (configuration, sampler, fitted metric): points used, measured order with its
    CI, declared order and verdict with its reason, what the errors were measured against and,
    for a reference solve, its margin. A metric is fitted when its rows name the
    declaration its error follows (column ``metric_order``: ``order`` or ``strong_order``)."""
    rows = []
    if results.empty:
        return pd.DataFrame(rows, columns=TABLE_COLUMNS)
    fitted = results[results.metric_order.isin(list(ORDER_COLUMNS))]
    keys = list(TABLE_COLUMNS[:5])
    basis = [column for column in MEASUREMENT_BASIS if column in fitted]
    for key, group in fitted.groupby(keys + basis, sort=False, dropna=False):
        key = key[:len(keys)]
        declared = group[ORDER_COLUMNS[group.metric_order.iloc[0]]].iloc[0]
        declared = None if pd.isna(declared) else float(declared)
        all_usable, dropped = usable_points(group)
        window, usable = all_usable.tail(FIT_POINTS + 1), all_usable.tail(FIT_POINTS)
        measured = half_width = math.nan
        slopes = np.array([])
        if len(usable) >= 2:
            measured, half_width = fit_order(usable.steps, usable.value)
            slopes = local_slopes(window.steps, window.value)
        result = verdict(measured, half_width, declared) if len(usable) >= FIT_POINTS or \
            declared is None else "INCONCLUSIVE"
        reason = _inconclusive_reason(usable, dropped, half_width) if result == "INCONCLUSIVE" else ""
        if result in ("PASS", "ABOVE", "FAIL"):
            reason = asymptotic_check(slopes, local_slope_errors(
                window.steps, window.value, window.get("stderr", np.full(len(window), np.nan))),
                result, _earlier_slope(all_usable, len(window)))
            result = "INCONCLUSIVE" if reason else result
        if result in ("FAIL", "ABOVE"):  # the evidence, as for every other verdict's reason
            reason = (f"{measured:.2f} ± {half_width:.2f} is {'below' if result == 'FAIL' else 'above'}"
                      f" the declared {declared:g} by more than max(CI, {MIN_ALLOWANCE:g}); local "
                      f"slopes {', '.join(f'{slope:.2f}' for slope in slopes)}")
        floor, floor_kind = _judged_floor(group)
        rows.append({
            **dict(zip(keys, key, strict=True)),
            "library": group.library.iloc[0] if "library" in group else "sdebench",
            "points": len(usable),
            "fit_steps": f"{int(usable.steps.min())}-{int(usable.steps.max())}" if len(usable) else "",
            "measured_order": measured,
            "ci95": half_width,
            "declared_order": declared,
            "verdict": result,
            "reason": reason,
            "local_slopes": ", ".join(f"{slope:.3g}" for slope in slopes),
            "floor": floor,
            "floor_kind": floor_kind,
            "dropped": "; ".join(f"{', '.join(map(str, steps))}: {reason}"
                                 for reason, steps in dropped.items()),
            "note": group.order_note.iloc[0] if declared is None else "",
            "score": group.score.iloc[0] if "score" in group and isinstance(
                group.score.iloc[0], str) else "",
            "against": _against(group),
            "reference_margin": _reference_margin(usable),
        })
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def _earlier_slope(usable: pd.DataFrame, window: int) -> float:
    """The local slope between the two usable points before the last ``window - 1`` (NaN where
    there are too few)."""
    if len(usable) < window + 1:
        return math.nan
    earlier = usable.iloc[-window - 1:-window + 1]
    return float(local_slopes(earlier.steps, earlier.value)[0])


def _judged_floor(group: pd.DataFrame) -> tuple[float, str]:
    """The largest floor any point of the group was judged against, and where it comes from
    (``none`` when the metric has no floor, e.g. the exact KL)."""
    floors = group.floor if "floor" in group else pd.Series(dtype=float)
    if floors.notna().sum() == 0:
        return math.nan, "none"
    largest = floors.idxmax()
    kind = group.floor_kind.loc[largest] if "floor_kind" in group else ""
    return float(floors.loc[largest]), kind if isinstance(kind, str) and kind else "unnamed"


def _against(group: pd.DataFrame) -> str:
    """What the errors were measured against (``exact``, or a reference solve)."""
    if "against" not in group:
        return "exact"
    named = group.against.dropna()
    named = named[named != ""]
    return named.iloc[0] if len(named) else ""


def _reference_margin(usable: pd.DataFrame) -> float:
    """For errors against a reference solve: the smallest fitted error over the reference's own
    change δ (its floor); how far the reference is below what it judges. NaN otherwise."""
    if usable.empty or "floor_kind" not in usable or not usable.floor_kind.eq("reference").all():
        return math.nan
    return float(usable.value.min() / usable.floor.max())
