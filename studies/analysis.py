"""One analysis pass over a study's rows: the frames that the console, the HTML tables and the
figures all read.

Orders are fitted once (:func:`sdebench.studies.order.order_table`), errors at the NFE budgets
are read once (:func:`sdebench.studies.precision.error_at_nfe`), the peers' conformance is
tabulated once (:mod:`sdebench.studies.conformance`), and from these the *answer*: per
configuration and sampler, its verdict on the headline metric, its error at each budget and its
wall time per sample — what a researcher opens a report for ("which sampler at my NFE budget,
and can I trust it?").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sdebench.studies.conformance import conformance_table
from sdebench.studies.order import order_table
from sdebench.studies.precision import (
    ANSWER_REACH,
    NFE_TARGETS,
    error_at_nfe,
    read_at,
    told_apart,
)

ANSWER_COLUMNS = ["config_id", "sampler", "library", "kind", "metric", "verdict",
                  "measured_order", "ci95", "declared_order", "reason", "note", "time_nfe",
                  "seconds_per_sample", "time_read"]
"""The answer's columns; its errors at the budgets are the ``at_nfe`` rows of its metric."""


@dataclass(frozen=True)
class Analysis:
    """The computed frames of one set of result rows (``units``: their unit ids)."""

    orders: pd.DataFrame
    at_nfe: pd.DataFrame
    conformance: pd.DataFrame
    answer: pd.DataFrame
    budgets: tuple[int, ...]
    units: frozenset

    @property
    def headline(self) -> pd.Series:
        """config_id → the metric its answer is judged on (:func:`headline_metric`)."""
        return self.answer.drop_duplicates("config_id").set_index("config_id").metric

    def answer_errors(self, config_id: str) -> pd.DataFrame:
        """The at-budget rows of the answer's metric in configuration ``config_id``."""
        return self.at_nfe[(self.at_nfe.config_id == config_id)
                           & (self.at_nfe.metric == self.headline.get(config_id))]

    def other_errors(self) -> pd.DataFrame:
        """The at-budget rows of every metric but each configuration's headline one."""
        return self.at_nfe[self.at_nfe.metric != self.at_nfe.config_id.map(self.headline)]


def check_budgets(budgets) -> tuple[int, ...]:
    """The budgets as sorted distinct positive ints; a ValueError naming a bad one."""
    values = tuple(budgets)
    bad = [b for b in values if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1]
    if not values or bad:
        raise ValueError(f"NFE budgets must be positive integers, got {list(values)!r}")
    return tuple(sorted({int(b) for b in values}))


def analyse(results: pd.DataFrame, budgets=NFE_TARGETS) -> Analysis:
    """The frames every view of ``results`` reads (module docstring). A sampler that a store
    holds on several measurement bases (an older implementation beside the current one) is
    read as one sampler per basis, named for it (:func:`~sdebench.studies.precision.told_apart`)."""
    budgets = check_budgets(budgets)
    results = told_apart(results)
    orders = order_table(results)
    at_nfe = error_at_nfe(results, budgets, reach=ANSWER_REACH, orders=orders)
    conformance = conformance_table(results, orders)
    units = frozenset(results.unit_id) if "unit_id" in results else frozenset()
    return Analysis(orders, at_nfe, conformance, answer_table(results, orders, budgets), budgets,
                    units)


def headline_metric(results: pd.DataFrame) -> str | None:
    """The metric a configuration's answer is judged on: W₂ where it was measured, else the first
    metric fitted against a declared (weak) order, else None."""
    fitted = results[results.metric_order == "order"].metric
    if fitted.empty:
        return None
    return "w2" if (fitted == "w2").any() else fitted.iloc[0]


def time_budget(budgets: tuple[int, ...]) -> int:
    """The budget at which the answer states the wall time: the middle one (the lower middle of
    an even count: NFE 20 of 10, 20, 50, 100)."""
    return budgets[(len(budgets) - 1) // 2]


def answer_table(results: pd.DataFrame, orders: pd.DataFrame, budgets: tuple[int, ...]
                 ) -> pd.DataFrame:
    """One row per (configuration, sampler) measured on the configuration's headline metric: its
    verdict with the measured and declared order, and its wall time per sample at
    :func:`time_budget` (read off its runs like the errors; ``time_read`` says how). Rows are
    grouped by library, ODE samplers before stochastic ones, in the study's order within."""
    rows = []
    at = time_budget(budgets)
    for config_id, section in results.groupby("config_id", sort=False):
        metric = headline_metric(section)
        if metric is None:
            continue
        fits = orders[(orders.config_id == config_id) & (orders.metric == metric)]
        fits = fits.drop_duplicates("sampler").set_index("sampler")
        measured = section[(section.metric == metric) & (section.status == "ok")]
        for sampler, runs in section[section.metric == metric].groupby("sampler", sort=False):
            fit = fits.loc[sampler] if sampler in fits.index else None
            seconds, read = _seconds_per_sample(measured[measured.sampler == sampler], at)
            rows.append({
                "config_id": config_id, "sampler": sampler,
                "library": runs.library.iloc[0] if "library" in runs else "sdebench",
                "kind": "SDE" if bool(runs.stochastic.iloc[0]) else "ODE", "metric": metric,
                "verdict": "" if fit is None else fit.verdict,
                "measured_order": math.nan if fit is None else fit.measured_order,
                "ci95": math.nan if fit is None else fit.ci95,
                "declared_order": math.nan if fit is None else fit.declared_order,
                "reason": "" if fit is None else fit.reason,
                "note": "" if fit is None else fit.note,
                "time_nfe": at, "seconds_per_sample": seconds, "time_read": read})
    table = pd.DataFrame(rows, columns=ANSWER_COLUMNS)
    if table.empty:
        return table
    first = {name: i for i, name in enumerate(dict.fromkeys(table.library))}
    order = table.assign(_library=table.library.map(first), _kind=table.kind.eq("SDE"))
    order = order.sort_values(["config_id", "_library", "_kind"], kind="stable")
    return table.loc[order.index].reset_index(drop=True)


def _seconds_per_sample(runs: pd.DataFrame, nfe: int) -> tuple[float, str]:
    """Wall time of a batch run over its batch size, read at ``nfe`` off the sampler's runs."""
    runs = runs[np.isfinite(runs.nfe) & (runs.wall_time > 0)].drop_duplicates("unit_id")
    if runs.empty:
        return math.nan, ""
    runs = runs.sort_values("nfe")
    per_sample = (runs.wall_time / runs.batch).to_numpy(float)
    value, read, _ = read_at(runs.nfe.to_numpy(float), per_sample, np.zeros(len(runs)),
                             float(nfe), ANSWER_REACH)
    return value, read
