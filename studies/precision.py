"""Which sampler at which cost: each sampler's error at a few target NFEs, read off its measured
curve — the question a practitioner opens a report with ("which sampler should I use at NFE 10,
20, 50?")."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

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


def _at(nfe: np.ndarray, values: np.ndarray, target: float) -> tuple[float, bool]:
    """(value at ``target``, interpolated?) by linear interpolation of log value in log NFE
    between the two nearest measured NFEs; NaN outside the measured range (no extrapolation)."""
    exact = values[nfe == target]
    if exact.size:
        return float(exact[0]), False
    below, above = nfe[nfe < target], nfe[nfe > target]
    if not below.size or not above.size:
        return math.nan, False
    n0, n1 = below.max(), above.min()
    v0, v1 = values[nfe == n0][0], values[nfe == n1][0]
    if v0 <= 0 or v1 <= 0:
        return math.nan, False
    weight = math.log(target / n0) / math.log(n1 / n0)
    return math.exp((1 - weight) * math.log(v0) + weight * math.log(v1)), True


def error_at_nfe(results: pd.DataFrame, targets=NFE_TARGETS) -> pd.DataFrame:
    """One row per (configuration, metric, sampler, target NFE): ``value`` (NaN outside the
    sampler's measured NFE range), ``interpolated`` (False where a run used exactly that NFE)
    and ``best`` (the lowest value of its configuration, metric and target)."""
    rows = []
    if results.empty:
        return pd.DataFrame(rows)
    for (config_id, metric, sampler), group in _errors(results).groupby(
            ["config_id", "metric", "sampler"], sort=False):
        group = group.sort_values("nfe")
        nfe, values = group.nfe.to_numpy(float), group.value.to_numpy(float)
        for target in targets:
            value, interpolated = _at(nfe, values, float(target))
            rows.append({"config_id": config_id, "metric": metric, "sampler": sampler,
                         "nfe": target, "value": value, "interpolated": interpolated})
    table = pd.DataFrame(rows)
    lowest = table.groupby(["config_id", "metric", "nfe"]).value.transform("min")
    table["best"] = table.value.notna() & (table.value == lowest)
    return table
