"""Which sampler at which cost: each sampler's error at a few target NFEs, read off its measured
curve — the question a practitioner opens a report with ("which sampler should I use at NFE 10,
20, 50?")."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sdebench.studies.order import MONTE_CARLO_MULTIPLE

NFE_TARGETS = (10, 20, 50, 100)


def _errors(results: pd.DataFrame) -> pd.DataFrame:
    """Rows that measure an error: fitted metrics as they are, diagnostics with a reference
    (e.g. the NLL of exact samples) as |value − reference|, named ``|nll − exact|``."""
    ok = results[(results.status == "ok") & np.isfinite(results.nfe)]
    fitted = ok[ok.metric_order != ""]
    referenced = ok[(ok.metric_order == "") & ok.reference.notna()].copy()
    referenced["value"] = (referenced.value - referenced.reference).abs()
    referenced["metric"] = "|" + referenced.metric + " − exact|"
    return pd.concat([fitted, referenced], ignore_index=True)


def _effective_floor(group: pd.DataFrame) -> np.ndarray:
    """The level below which a value is not discretisation error (sdebench.studies.order)."""
    floor = group.floor.to_numpy(float) if "floor" in group else np.full(len(group), np.nan)
    monte_carlo = (group.floor_kind == "Monte Carlo").to_numpy() if "floor_kind" in group \
        else np.zeros(len(group), bool)
    return np.where(monte_carlo, MONTE_CARLO_MULTIPLE * floor, floor)


def _at(nfe: np.ndarray, values: np.ndarray, floors: np.ndarray,
        target: float) -> tuple[float, bool, bool]:
    """(value at ``target``, interpolated?, at the floor?) by linear interpolation of log value
    in log NFE between the two nearest measured NFEs; NaN outside the measured range (no
    extrapolation). At the floor: not above the larger floor of the runs it is read from."""
    exact = nfe == target
    if exact.any():
        value, floor = float(values[exact][0]), floors[exact][0]
        return value, False, bool(value <= floor)
    below, above = nfe[nfe < target], nfe[nfe > target]
    if not below.size or not above.size:
        return math.nan, False, False
    i0, i1 = np.flatnonzero(nfe == below.max())[0], np.flatnonzero(nfe == above.min())[0]
    v0, v1 = values[i0], values[i1]
    if v0 <= 0 or v1 <= 0:
        return math.nan, False, False
    weight = math.log(target / nfe[i0]) / math.log(nfe[i1] / nfe[i0])
    value = math.exp((1 - weight) * math.log(v0) + weight * math.log(v1))
    return value, True, bool(value <= np.fmax(floors[i0], floors[i1]))


TABLE_COLUMNS = ["config_id", "metric", "sampler", "nfe", "value", "interpolated", "at_floor",
                 "best"]


def _empty_table() -> pd.DataFrame:
    return pd.DataFrame(columns=TABLE_COLUMNS)


def error_at_nfe(results: pd.DataFrame, targets=NFE_TARGETS) -> pd.DataFrame:
    """One row per (configuration, metric, sampler, target NFE): ``value`` (NaN outside the
    sampler's measured NFE range), ``interpolated`` (False where a run used exactly that NFE),
    ``at_floor`` (not above the error floor: noise or round-off, not a ranking) and ``best``
    (the lowest value above the floor of its configuration, metric and target)."""
    rows = []
    if results.empty:
        return _empty_table()
    for (config_id, metric, sampler), group in _errors(results).groupby(
            ["config_id", "metric", "sampler"], sort=False):
        group = group.sort_values("nfe")
        nfe, values = group.nfe.to_numpy(float), group.value.to_numpy(float)
        floors = _effective_floor(group)
        for target in targets:
            value, interpolated, at_floor = _at(nfe, values, floors, float(target))
            rows.append({"config_id": config_id, "metric": metric, "sampler": sampler,
                         "nfe": target, "value": value, "interpolated": interpolated,
                         "at_floor": at_floor})
    if not rows:  # nothing measured an error (every unit diverged, say)
        return _empty_table()
    table = pd.DataFrame(rows)
    ranked = table.value.where(~table.at_floor)
    lowest = ranked.groupby([table.config_id, table.metric, table.nfe]).transform("min")
    table["best"] = ranked.notna() & (ranked == lowest)
    return table
