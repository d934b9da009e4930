"""Peer conformance: per peer sampler of a section, its declared order with the source, the
measured order with its CI and verdict, and its agreement with sdebench's own implementation
of the same method — the evidence a report prints beside each library's sampler."""

from __future__ import annotations

import math

import pandas as pd

CONFORMANCE_COLUMNS = ["config_id", "library", "sampler", "metric", "declared_order",
                       "order_source", "measured_order", "ci95", "fit_steps", "verdict", "reason",
                       "twin", "agreement", "agreement_floor", "agrees", "convention",
                       "steps_on"]


def _text(value) -> str:
    """A text cell as a string ("" for a missing value, which a CSV round trip makes NaN)."""
    return value if isinstance(value, str) else ""


def _agreement(rows: pd.DataFrame) -> tuple[float, float, list[int], list[int]]:
    """The largest agreement value and round-off floor over the step counts, the step counts
    where the value exceeds its floor, and all step counts measured."""
    rows = rows[(rows.metric == "agreement") & (rows.status == "ok")].sort_values("steps")
    if rows.empty:
        return math.nan, math.nan, [], []
    differs = rows[rows.value > rows.floor].steps.astype(int).tolist()
    return (float(rows.value.max()), float(rows.floor.max()), differs,
            rows.steps.astype(int).tolist())


def _agrees(differs: list[int], measured: list[int], twin: str, convention: str) -> str:
    """Where the peer agrees with its twin to round-off, and what explains the rest."""
    if not twin:
        return "no sdebench twin"
    if not measured:
        return "not measured"
    if not differs:
        return "yes: round-off at every step count"
    why = convention or "no convention difference is known: a finding"
    agreeing = [n for n in measured if n not in differs]
    if agreeing and max(differs) < min(agreeing):
        # "to round-off": below the floor of the precision the peer computes in, which for a
        # float32 library may also hide a difference that keeps shrinking with the step size
        return (f"to round-off from {min(agreeing)} steps (differs at "
                f"{', '.join(map(str, differs))}: {why})")
    return f"no, at {', '.join(map(str, differs))} steps: {why}"


def conformance_table(results: pd.DataFrame, orders: pd.DataFrame) -> pd.DataFrame:
    """One row per (section, peer sampler, fitted metric): the columns of
    :data:`CONFORMANCE_COLUMNS`. Empty when no peer sampler ran."""
    if results.empty or "library" not in results:
        return pd.DataFrame(columns=CONFORMANCE_COLUMNS)
    peers = results[results.library.fillna("sdebench") != "sdebench"]
    rows = []
    for (config_id, sampler), group in peers.groupby(["config_id", "sampler"], sort=False):
        first = group.iloc[0]
        difference, floor, differs, measured = _agreement(group)
        fits = orders[(orders.config_id == config_id) & (orders.sampler == sampler)] \
            if not orders.empty else orders
        for _, fit in (fits.iterrows() if not fits.empty else [(None, {})]):
            rows.append({
                "config_id": config_id, "library": first.library, "sampler": sampler,
                "metric": fit.get("metric", ""), "declared_order": fit.get("declared_order",
                                                                           math.nan),
                "order_source": _text(first.get("order_source")),
                "measured_order": fit.get("measured_order", math.nan),
                "ci95": fit.get("ci95", math.nan), "fit_steps": fit.get("fit_steps", ""),
                "verdict": fit.get("verdict", "no fit"), "reason": fit.get("reason", ""),
                "twin": _text(first.get("twin")), "agreement": difference,
                "agreement_floor": floor,
                "agrees": _agrees(differs, measured, _text(first.get("twin")),
                                  _text(first.get("convention"))),
                "convention": _text(first.get("convention")),
                "steps_on": _text(first.get("steps_on")),
            })
    return pd.DataFrame(rows, columns=CONFORMANCE_COLUMNS)
