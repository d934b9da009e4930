"""The report's HTML tables, each formatted from computed frames (:mod:`sdebench.studies.analysis`);
nothing is fitted or read off a curve here."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from sdebench.studies.analysis import Analysis, time_budget
from sdebench.studies.metrics import METRICS, get_metric
from sdebench.studies.order import VERDICT_LEGEND
from sdebench.studies.precision import BUDGET_MARKS, EXTRAPOLATED, budget_text


def format_value(value) -> str:
    if isinstance(value, float):
        if np.isnan(value):
            return ""
        return f"{value:.3g}" if abs(value) < 1e-3 or abs(value) >= 1e4 else f"{value:.3f}"
    return str(value)


def filled_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns with at least one value (a column of blanks, e.g. ``score`` outside a
    learned-score study, only widens the table)."""
    filled = [c for c in frame.columns
              if not frame[c].map(lambda v: v is None or v == "" or v != v).all()]
    return frame[filled]


def table(frame: pd.DataFrame) -> str:
    """``frame`` as an HTML table in a box that scrolls when it is wider than the page; a
    verdict cell takes its verdict's colour."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = []
        for column, value in row.items():
            css = f' class="{value}"' if column == "verdict" else (
                f' class="{column}"' if column in ("note", "reason", "dropped", "error", "value")
                else "")
            cells.append(f"<td{css}>{html.escape(format_value(value))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="wide"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def measured_orders(rows: pd.DataFrame) -> list[str]:
    """Each row's measured order "m ± CI" ("m" without a finite CI, "" without an order)."""
    return ["" if m != m else f"{m:.3f} ± {c:.3f}" if np.isfinite(c) else f"{m:.3f}"
            for m, c in zip(rows.measured_order, rows.ci95, strict=True)]


def metric_definition(metric: str) -> str:
    """One line defining a metric, from its registration (:mod:`sdebench.studies.metrics`)."""
    if metric.startswith("|") and metric.endswith(" − exact|"):
        inner = metric[1:-len(" − exact|")]
        return f"|{inner} − {inner} of exact samples| ({metric_definition(inner)})"
    return get_metric(metric).description if metric in METRICS else metric


def format_seconds(value: float) -> str:
    """A duration with the unit that keeps 1–3 digits before the point (s, ms, µs, ns)."""
    if value != value:
        return ""
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def _declared(order: float) -> str:
    return "" if order != order else f"{order:g}"


def _budget_cell(value: float, read: str, at_floor: bool, best: bool) -> str:
    """The console's text (:func:`~sdebench.studies.precision.budget_text`) in a cell that is
    highlighted when best, grey at the floor with its value on hover."""
    css = ' class="best"' if best else ' class="floor"' if at_floor else ""
    title = f' title="{value:.3g}: not above the error floor"' if at_floor and value == value else ""
    return f"<td{css}{title}>{html.escape(budget_text(value, read, at_floor, best))}</td>"


def answer(analysis: Analysis, config_id: str) -> str:
    """The section's first table: per sampler (grouped by family), its verdict with the
    measured ± 95% CI and declared order on the headline metric, the metric at each NFE budget
    and the wall time per sample; then the legend that defines every column."""
    rows = analysis.answer[analysis.answer.config_id == config_id]
    if rows.empty:
        return ""
    metric, budgets = rows.metric.iloc[0], analysis.budgets
    errors = analysis.answer_errors(config_id).set_index(["sampler", "nfe"])
    at = time_budget(budgets)
    head = ("<tr><th>sampler</th><th>kind</th><th>verdict</th><th>order (95% CI)</th>"
            "<th>declared</th>"
            + "".join(f"<th>{html.escape(metric)} at NFE {n}</th>" for n in budgets)
            + f"<th>time per sample at NFE {at}</th></tr>")
    body = []
    for row in rows.itertuples():
        evidence = row.reason or row.note
        order = "" if row.measured_order != row.measured_order else (
            f"{row.measured_order:.2f} ± {row.ci95:.2f}" if np.isfinite(row.ci95)
            else f"{row.measured_order:.2f}")
        cells = [f"<th>{html.escape(row.sampler)}</th><td>{row.kind}</td>",
                 f'<td class="{row.verdict}" title="{html.escape(evidence)}">'
                 f"{html.escape(row.verdict)}</td>",
                 f"<td>{order}</td><td>{_declared(row.declared_order)}</td>"]
        for n in budgets:
            if (row.sampler, n) in errors.index:
                cell = errors.loc[(row.sampler, n)]
                cells.append(_budget_cell(cell.value, cell.read, bool(cell.at_floor), bool(cell.best)))
            else:
                cells.append("<td></td>")
        time = format_seconds(row.seconds_per_sample) + (
            EXTRAPOLATED if row.time_read == "extrapolated" else "")
        cells.append(f"<td>{html.escape(time)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    legend = (f"{metric_definition(metric)}, read off each sampler's measured curve (log–log, "
              f"between its two nearest runs; {EXTRAPOLATED}: beyond its runs, at most 2× in "
              "NFE; blank: further out). Highlighted and *: the best of a column; floor, grey: "
              "not above the error floor (noise or round-off, not a ranking; hover for its "
              "value); a sampler without a declared order (N/A) is never best. Time: wall time "
              "of a batch run over its batch size. "
              "Kind: ODE (deterministic) or SDE (stochastic). Hover a verdict for its evidence. "
              + VERDICT_LEGEND)
    return (f'<table class="answer"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'
            f'<p class="legend"><b>{html.escape(metric)}</b>: {html.escape(legend)}</p>')


def error_at_nfe_tables(at_nfe: pd.DataFrame) -> str:
    """Samplers × NFE budgets per error metric (the answer's metric excluded by the caller):
    values read as in :func:`answer`."""
    parts = []
    for metric, part in at_nfe.groupby("metric", sort=False):
        targets = sorted(part.nfe.unique())
        head = "".join(f"<th>NFE {n}</th>" for n in targets)
        rows = []
        for sampler, cells in part.groupby("sampler", sort=False):
            cells = cells.set_index("nfe")
            row = "".join(_budget_cell(cells.value[n], cells.read[n], bool(cells.at_floor[n]),
                                       bool(cells.best[n])) for n in targets)
            rows.append(f"<tr><th>{html.escape(sampler)}</th>{row}</tr>")
        parts.append(f"<h4>{html.escape(metric)}: {html.escape(metric_definition(metric))}</h4>"
                     f"<table><thead><tr><th>sampler</th>{head}</tr></thead>"
                     f"<tbody>{''.join(rows)}</tbody></table>")
    if not parts:
        return ""
    return ("<h3>Other metrics at a given cost</h3><p>Read as in the first table "
            f"({BUDGET_MARKS}; the best highlighted).</p>" + "".join(parts))


def conformance(rows: pd.DataFrame, commands: list[str]) -> str:
    """The peer conformance table and, for each FAIL or unexplained disagreement, a finding
    with the numbers and the command that reproduces it."""
    shown = rows.assign(measured=measured_orders(rows))
    body = table(shown[["library", "sampler", "declared_order", "order_source", "measured",
                        "fit_steps", "verdict", "twin", "agreement", "agrees"]])
    command = commands[0] if commands else "(the command of this section)"
    findings = []
    for _, row in rows.iterrows():
        if row.verdict == "FAIL":
            findings.append(f"{row.sampler}: measured order {row.measured_order:.3f} ± "
                            f"{row.ci95:.3f} at steps {row.fit_steps}, declared "
                            f"{row.declared_order:g} ({row.order_source})")
        if "a finding" in row.agrees:
            findings.append(f"{row.sampler}: differs from sdebench's {row.twin} by up to "
                            f"{row.agreement:.3g} (round-off {row.agreement_floor:.2g})")
    notes = "".join(f"<li>{html.escape(text)}; reproduce: <code>{html.escape(command)}</code>"
                    "</li>" for text in findings)
    own_grids = rows[rows.steps_on.fillna("") != ""] if "steps_on" in rows else rows.iloc[:0]
    grids = "".join(f"<p>{html.escape(', '.join(group.sampler.unique()))} step on "
                    f"{html.escape(steps_on)} (their rows keep the study's grid label).</p>"
                    for steps_on, group in own_grids.groupby("steps_on", sort=False))
    return ("<h3>Peer conformance</h3><p>Each peer library's sampler, run in its own loop on "
            "this problem: its declared order and where it is stated, the measured order, and "
            "its agreement with sdebench's implementation of the same method on the grid the "
            "peer steps on (largest difference of the exact output laws over the step counts, or "
            "without them the root-mean-square difference of the outputs from the same starts; "
            "round-off is the floor of the precision the library computes in).</p>" + body
            + grids + (f"<p>Findings:</p><ul>{notes}</ul>" if notes else ""))
