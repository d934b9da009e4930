"""Which sampler at which cost: each sampler's error at a few target NFEs, read off its measured
curve — the question a practitioner opens a report with ("which sampler should I use at NFE 10,
20, 50?")."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sdebench.studies.order import MEASUREMENT_BASIS, MONTE_CARLO_MULTIPLE

NFE_TARGETS = (10, 20, 50, 100)
ANSWER_REACH = 2.0
"""How far past a sampler's runs its error may be read, as a factor in NFE: a step count's NFE is
a multiple of its NFE per step, so a third-order single-step sampler (3 NFE per step) has no
run at NFE 10 when its fewest steps are 4 (NFE 12). Beyond the runs, the value lies on the line
through its two outermost runs and is marked extrapolated."""


EXTRAPOLATED = "†"
"""Marks a value read beyond a sampler's runs (at most :data:`ANSWER_REACH` in NFE)."""
BEST = "*"
"""Marks the lowest value above the floor of its configuration, metric and budget."""
AT_FLOOR = "floor"
"""Stands for a value not above the error floor (noise or round-off, not a ranking)."""
BUDGET_MARKS = f"{EXTRAPOLATED} extrapolated, {BEST} best, {AT_FLOOR}: at the error floor"
"""The marks of :func:`budget_text`, as a table's legend states them."""


def budget_text(value: float, read: str, at_floor: bool, best: bool) -> str:
    """An error read at an NFE budget (a row of :func:`error_at_nfe`) as the console and the
    report write it: "" where it cannot be read, :data:`AT_FLOOR` at the error floor, else three
    significant digits, :data:`EXTRAPOLATED` if read beyond the runs, :data:`BEST` if best."""
    if value != value:
        return ""
    if at_floor:
        return AT_FLOOR
    return f"{value:.3g}{EXTRAPOLATED if read == 'extrapolated' else ''}{BEST if best else ''}"


BASIS_LABELS = {"sampler_source": "code", "brownian_path": "path",
                "reference_solve": "reference"}
"""How a sampler's name tells its measurements apart (:func:`told_apart`)."""


def told_apart(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` with the sampler of a configuration measured on more than one basis
    (:data:`~sdebench.studies.order.MEASUREMENT_BASIS`: a store keeps the rows of an older
    implementation, Brownian path or reference solve beside the current ones) named for each
    basis, e.g. ``heun [code 1a2b3c4d]``: every reading keyed by sampler — errors at the
    budgets, the answer — then keeps them apart, as the order fits do, instead of reading one
    curve through both."""
    basis = [column for column in MEASUREMENT_BASIS if column in results]
    if results.empty or not basis:
        return results
    values = results[basis].fillna("").astype(str)
    varying = (values.groupby([results.config_id, results.sampler], sort=False)
               .transform("nunique") > 1).to_numpy()
    mixed = varying.any(axis=1)
    if not mixed.any():
        return results
    samplers = results.sampler.to_numpy(dtype=object).copy()
    samplers[mixed] = [
        f"{sampler} [" + "; ".join(_basis_text(column, value) for column, value, differs
                                   in zip(basis, row, varies, strict=True) if differs) + "]"
        for sampler, row, varies in zip(samplers[mixed], values.to_numpy()[mixed],
                                        varying[mixed], strict=True)]
    return results.assign(sampler=samplers)


def _basis_text(column: str, value: str) -> str:
    """``code 1a2b3c4d``: a basis as a sampler's name shows it (hashes cut to 8 characters)."""
    shown = value if column == "reference_solve" else value[:8]
    return f"{BASIS_LABELS[column]} {shown or 'core'}"  # "": the core, in config_id


def _errors(results: pd.DataFrame) -> pd.DataFrame:
    """Rows that measure an error: fitted metrics as they are, diagnostics with a reference
    (e.g. the NLL of exact samples) as |value − reference|, named ``|nll − exact|``; a sampler
    measured on several bases is one sampler per basis (:func:`told_apart`)."""
    results = told_apart(results)
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


def read_at(nfe: np.ndarray, values: np.ndarray, floors: np.ndarray, target: float,
        reach: float) -> tuple[float, str, bool]:
    """(value at ``target``, how it was read, at the floor?): a run's own value ("run"), or the
    line of log value in log NFE through the two nearest runs — between them ("interpolated"),
    or beyond the runs by at most a factor ``reach`` in NFE ("extrapolated"); NaN and "" further
    out. At the floor: not above the larger floor of the runs it is read from."""
    exact = nfe == target
    if exact.any():
        value, floor = float(values[exact][0]), floors[exact][0]
        return value, "run", bool(value <= floor)
    if np.unique(nfe).size < 2 or not nfe.min() / reach <= target <= nfe.max() * reach:
        return math.nan, "", False
    below, above = nfe[nfe < target], nfe[nfe > target]
    if below.size and above.size:
        read = "interpolated"
        i0 = np.flatnonzero(nfe == below.max())[0]
        i1 = np.flatnonzero(nfe == above.min())[0]
    else:  # beyond the runs: the line through the two runs nearest the target
        read = "extrapolated"
        nearest = np.argsort(np.abs(np.log(nfe / target)), kind="stable")
        i0 = nearest[0]
        i1 = next(i for i in nearest if nfe[i] != nfe[i0])
    v0, v1 = values[i0], values[i1]
    if v0 <= 0 or v1 <= 0:
        return math.nan, "", False
    weight = math.log(target / nfe[i0]) / math.log(nfe[i1] / nfe[i0])
    value = math.exp((1 - weight) * math.log(v0) + weight * math.log(v1))
    return value, read, bool(value <= np.fmax(floors[i0], floors[i1]))


TABLE_COLUMNS = ["config_id", "metric", "sampler", "nfe", "value", "read", "at_floor", "best"]


def _empty_table() -> pd.DataFrame:
    return pd.DataFrame(columns=TABLE_COLUMNS)


def error_at_nfe(results: pd.DataFrame, targets=NFE_TARGETS, *, reach: float = 1.0,
                 orders: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (configuration, metric, sampler, target NFE): ``value`` (NaN where it cannot
    be read), ``read`` (how: "run", "interpolated", "extrapolated" — at most a factor ``reach``
    past the sampler's runs, :func:`read_at` — or "" for NaN), ``at_floor`` (not above the error
    floor: noise or round-off, not a ranking) and ``best`` (the lowest value above the floor of
    its configuration, metric and target). With ``orders`` (:func:`sdebench.studies.order.order_table`)
    a sampler whose verdict on the metric is N/A (no declared order, e.g. an adaptive solver
    whose NFE its tolerance sets) is never best."""
    rows = []
    if results.empty:
        return _empty_table()
    for (config_id, metric, sampler), group in _errors(results).groupby(
            ["config_id", "metric", "sampler"], sort=False):
        group = group.sort_values("nfe")
        nfe, values = group.nfe.to_numpy(float), group.value.to_numpy(float)
        floors = _effective_floor(group)
        for target in targets:
            value, read, at_floor = read_at(nfe, values, floors, float(target), reach)
            rows.append({"config_id": config_id, "metric": metric, "sampler": sampler,
                         "nfe": target, "value": value, "read": read, "at_floor": at_floor})
    if not rows:  # nothing measured an error (every unit diverged, say)
        return _empty_table()
    table = pd.DataFrame(rows)
    ranked = table.value.where(~table.at_floor & ~_not_ranked(table, orders))
    lowest = ranked.groupby([table.config_id, table.metric, table.nfe]).transform("min")
    table["best"] = ranked.notna() & (ranked == lowest)
    return table


def _not_ranked(table: pd.DataFrame, orders: pd.DataFrame | None) -> pd.Series:
    """Rows of samplers whose verdict on the metric is N/A."""
    if orders is None or orders.empty:
        return pd.Series(False, index=table.index)
    unranked = orders[orders.verdict == "N/A"]
    keys = set(zip(unranked.config_id, unranked.sampler, unranked.metric, strict=True))
    return pd.Series([key in keys for key in zip(table.config_id, table.sampler, table.metric,
                                                 strict=True)], index=table.index)
