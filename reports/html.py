"""Render stored study frames into one self-contained HTML page (inline SVG, no scripts, no
network).

Reports only render: every number on the page comes from the frames passed in (results, order
fits, sample points, trajectories, section configurations); nothing is fitted or sampled here.
One section per configuration (``config_id``): rows of different configurations are never drawn
or tabulated together, and each section prints the configuration that made it.
"""

from __future__ import annotations

import datetime
import html
import io
import json
import platform
from dataclasses import dataclass, field
from itertools import cycle
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from sdebench.studies.learned import SCORE_ERROR_NOTE  # noqa: E402
from sdebench.studies.order import VERDICT_LEGEND  # noqa: E402

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1300px;margin:2em auto;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em}
table{border-collapse:collapse;font-size:.85em;margin:1em 0}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:right}th{background:#f3f3f3}
td.note,td.reason,td.dropped,td.error,td.value{text-align:left;max-width:420px}
.PASS{background:#dff5df}.FAIL{background:#f8d7d7}.ABOVE{background:#fff4cc}
.INCONCLUSIVE{background:#e8e8f4}td.best{background:#dff5df;font-weight:bold}td.floor{color:#999}
figure{margin:1em 0}figcaption{font-size:.85em;color:#555}
div.wide{overflow-x:auto;max-width:100%}
code{background:#f5f5f5;padding:0 .2em}
"""
_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "<", ">", "*", "h", "p", "d", "8", "H", "1", "2")
_SECTION_KEYS = ("schedule", "schedule_params", "problem", "problem_params", "score", "model_params",
                 "dim", "batch", "grid", "grid_params", "dtype", "device", "seed",
                 "sdebench_version", "code", "torch_version")


@dataclass
class StudyFrames:
    """What a report shows: ``results`` (one row per measurement), ``orders`` (fits),
    ``at_nfe`` (errors at target NFEs, :func:`sdebench.studies.precision.error_at_nfe`),
    ``samples`` (2-D points), ``trajectories``, ``sections`` (config_id → {config, commands}),
    ``score_errors`` (e(t) of learned-score sections, :mod:`sdebench.studies.learned`),
    ``conformance`` (peer samplers, :mod:`sdebench.studies.conformance`)."""

    results: pd.DataFrame
    orders: pd.DataFrame
    at_nfe: pd.DataFrame = field(default_factory=pd.DataFrame)
    samples: pd.DataFrame = field(default_factory=pd.DataFrame)
    trajectories: pd.DataFrame = field(default_factory=pd.DataFrame)
    sections: dict = field(default_factory=dict)
    score_errors: pd.DataFrame = field(default_factory=pd.DataFrame)
    conformance: pd.DataFrame = field(default_factory=pd.DataFrame)


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _styles(frame: pd.DataFrame) -> dict:
    """sampler → line style: a colour and marker of its own (no two samplers alike), solid for
    ODE samplers and dashed for stochastic ones."""
    samplers = list(dict.fromkeys(frame.sampler))
    colours = plt.get_cmap("tab20").colors
    stochastic = frame.drop_duplicates("sampler").set_index("sampler")["stochastic"] \
        if "stochastic" in frame else pd.Series(False, index=samplers)
    markers = cycle(_MARKERS)
    return {name: {"color": colours[(2 * i) % 20 + (2 * i // 20) % 2], "marker": next(markers),
                   "linestyle": "--" if bool(stochastic.get(name, False)) else "-"}
            for i, name in enumerate(samplers)}


def metric_figure(frame: pd.DataFrame, metric: str) -> str:
    """Log-log ``metric`` against NFE, one line per sampler; its floor (round-off or Monte
    Carlo) as a grey band, a diagnostic's reference value as a dotted line, and reference
    slopes anchored to the data."""
    figure, axis = plt.subplots(figsize=(8, 5))
    positive = _plot_curves(axis, frame, _styles(frame))
    axis.set_xscale("log")
    if positive.empty:
        axis.text(0.5, 0.5, "no finite values to draw", transform=axis.transAxes, ha="center")
    elif (positive.value.max() / positive.value.min()) > 10:
        axis.set_yscale("log")
    floor = frame.floor.max() if "floor" in frame else np.nan
    low, high = axis.get_ylim()
    if np.isfinite(floor) and low < floor:
        axis.axhspan(low, min(floor, high), color="0.85", zorder=0,
                     label=f"{frame.floor_kind.dropna().iloc[0] or 'error'} floor")
        axis.set_ylim(low, high)
    reference = frame.reference.dropna() if "reference" in frame else pd.Series(dtype=float)
    if not reference.empty:
        axis.axhline(float(reference.mean()), color="k", linestyle=":", linewidth=1,
                     label="exact samples")
    _reference_slopes(axis, positive)
    axis.set_xlabel("NFE (model evaluations)")
    axis.set_ylabel(metric)
    axis.grid(True, which="both", alpha=0.3)
    _legend(axis)
    return _svg(figure)


def _plot_curves(axis, frame: pd.DataFrame, styles: dict, linestyle: str | None = None,
                 suffix: str = "") -> pd.DataFrame:
    """One line per sampler of its positive, finite values against NFE, with ±2 standard error
    bars where the metric has them; returns the rows drawn."""
    drawn = frame[(frame.value > 0) & np.isfinite(frame.value)]
    for sampler, group in drawn.groupby("sampler", sort=False):
        group = group.sort_values("nfe")
        style = styles[sampler] if linestyle is None else {**styles[sampler], "linestyle": linestyle}
        stderr = group.stderr if "stderr" in group and group.stderr.notna().any() else None
        axis.errorbar(group.nfe, group.value, yerr=None if stderr is None else 2 * stderr,
                      markersize=4, capsize=2, label=f"{sampler} ({suffix})" if suffix else sampler,
                      **style)
    return drawn


def _legend(axis) -> None:
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=7, ncol=2)
    else:
        axis.text(0.5, 0.5, "nothing to draw", transform=axis.transAxes, ha="center")


def _reference_slopes(axis, frame: pd.DataFrame) -> None:
    """Dashed slopes −p for each order p declared for this metric (the order or the strong
    order) by the samplers drawn, starting at the largest value at the smallest NFE and
    labelled inside the axes; none for diagnostics."""
    if frame.empty or axis.get_yscale() != "log" or frame.nfe.nunique() < 2:
        return
    column = {"order": "declared_order", "strong_order": "declared_strong_order"}.get(
        frame.metric_order.iloc[0] if "metric_order" in frame else "")
    if column is None or column not in frame:  # a diagnostic (e.g. KL): no declared slope
        return
    declared = sorted({float(v) for v in frame[column].dropna()})
    nfe = np.array([frame.nfe.min(), frame.nfe.max()], float)
    start = frame[frame.nfe == frame.nfe.min()].value.max()
    low = frame.value.min()
    for order in declared:
        values = start * (nfe / nfe[0]) ** (-order)
        end = nfe[1] if values[1] >= low else nfe[0] * (start / low) ** (1 / order)
        axis.plot([nfe[0], end], [start, start * (end / nfe[0]) ** (-order)], "k--",
                  linewidth=0.6, alpha=0.5)
        label_at = nfe[0] * (end / nfe[0]) ** 0.6  # 60 % along: slopes part, labels do not meet
        axis.annotate(f"slope −{order:g}", (label_at, start * (label_at / nfe[0]) ** (-order)),
                      fontsize=7, alpha=0.7, xytext=(3, 3), textcoords="offset points")


def learned_versus_exact_figure(learned: pd.DataFrame, exact: pd.DataFrame, metric: str) -> str:
    """``metric`` against NFE on the learned score (solid) and on the exact score (dotted, same
    colour and marker): where they part, the score error has overtaken the discretisation
    error; the exact-score curve alone is the discretisation error."""
    figure, axis = plt.subplots(figsize=(8, 5))
    styles = _styles(pd.concat([learned, exact]))
    for frame, linestyle, suffix in ((learned, "-", "learned"), (exact, ":", "exact score")):
        _plot_curves(axis, frame, styles, linestyle, suffix)
    axis.set_xscale("log")
    axis.set_xlabel("NFE (model evaluations)")
    axis.set_ylabel(metric)
    axis.grid(True, which="both", alpha=0.3)
    _legend(axis)
    return _svg(figure)


def work_precision_figure(frame: pd.DataFrame, metric: str) -> str:
    """Error against the median wall time of a batch run, bars from the fastest to the slowest
    of its repeated timings (work–precision diagram)."""
    figure, axis = plt.subplots(figsize=(8, 5))
    styles = _styles(frame)
    frame = frame[(frame.value > 0) & np.isfinite(frame.value) & (frame.wall_time > 0)]
    for sampler, group in frame.groupby("sampler", sort=False):
        group = group.sort_values("wall_time")
        spread = None
        if "wall_time_min" in group and (group.wall_time_max > group.wall_time_min).any():
            spread = [group.wall_time - group.wall_time_min, group.wall_time_max - group.wall_time]
        axis.errorbar(group.wall_time, group.value, xerr=spread, markersize=4, capsize=2,
                      label=sampler, **styles[sampler])
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("wall time of one batch run [s]")
    axis.set_ylabel(metric)
    axis.grid(True, which="both", alpha=0.3)
    _legend(axis)
    return _svg(figure)


def scatter_figure(samples: pd.DataFrame) -> str:
    """Output points per sampler (rows) at up to three step counts (columns), as SVG."""
    return _svg(scatter_panels(samples))


def scatter_panels(samples: pd.DataFrame):
    """The matplotlib figure of :func:`scatter_figure` (constrained layout: titles never run
    into the tick labels of the row above)."""
    samplers = list(dict.fromkeys(samples.sampler))
    all_steps = sorted(samples.steps.unique())
    steps = sorted({all_steps[0], all_steps[len(all_steps) // 2], all_steps[-1]})
    figure, axes = plt.subplots(len(samplers), len(steps), figsize=(2.6 * len(steps), 2.5 * len(samplers)),
                                squeeze=False, constrained_layout=True)
    converged = samples[samples.steps == all_steps[-1]]
    limits = [(converged[c].quantile(0.01), converged[c].quantile(0.99)) for c in ("x", "y")]
    limits = [(lo - 0.3 * (hi - lo), hi + 0.3 * (hi - lo)) for lo, hi in limits]
    for i, sampler in enumerate(samplers):
        for j, n in enumerate(steps):
            axis = axes[i, j]
            points = samples[(samples.sampler == sampler) & (samples.steps == n)]
            inside = points[points.x.between(*limits[0]) & points.y.between(*limits[1])]
            axis.scatter(inside.x, inside.y, s=2, alpha=0.5)
            if len(inside) < len(points) or points.empty:
                axis.text(0.5, 0.05, "no points (diverged)" if points.empty else
                          f"{len(points) - len(inside)} of {len(points)} points off-axis",
                          transform=axis.transAxes, ha="center", fontsize=6, color="firebrick")
            axis.set_xlim(*limits[0])
            axis.set_ylim(*limits[1])
            axis.set_title(f"{sampler}, {n} steps", fontsize=8)
    return figure


def score_error_figure(frame: pd.DataFrame) -> str:
    """e(t) = E‖s_θ − ∇log p_t‖² against σ(t) (log–log) with ±2 standard errors, and g²(t) e(t),
    the integrand of the KL bound's loss term."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    band = 2 * frame.score_error_stderr
    for axis, values, label in ((axes[0], frame.score_error, "e(t) = E‖s_θ − ∇log p_t‖²"),
                                (axes[1], frame.g2 * frame.score_error, "g²(t) e(t)")):
        scale = values / frame.score_error.where(frame.score_error > 0)
        axis.plot(frame.sigma, values, marker="o", markersize=3, color="tab:blue")
        axis.fill_between(frame.sigma, (values - band * scale).clip(lower=1e-300),
                          values + band * scale, color="tab:blue", alpha=0.2, linewidth=0)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("σ(t)")
        axis.set_title(label, fontsize=9)
    return _svg(figure)


def trajectory_figure(trajectories: pd.DataFrame) -> str:
    """Paths from noise (left) to data (right): reverse SDE versus PF-ODE, same starts."""
    kinds = list(dict.fromkeys(trajectories.kind))
    figure, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 3.5), sharey=True, squeeze=False)
    for axis, kind in zip(axes[0], kinds, strict=True):
        for _, path in trajectories[trajectories.kind == kind].groupby("path"):
            axis.plot(path.t, path.x, linewidth=0.7, alpha=0.7)
        axis.set_xscale("log")
        axis.set_ylim(-4, 4)
        axis.invert_xaxis()
        axis.set_title(kind, fontsize=9)
        axis.set_xlabel("t (log scale, decreasing)")
    axes[0, 0].set_ylabel("x")
    return _svg(figure)


def _format(value) -> str:
    if isinstance(value, float):
        if np.isnan(value):
            return ""
        return f"{value:.3g}" if abs(value) < 1e-3 or abs(value) >= 1e4 else f"{value:.3f}"
    return str(value)


def _filled_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns with at least one value (a column of blanks, e.g. ``score`` outside a
    learned-score study, only widens the table)."""
    filled = [c for c in frame.columns
              if not frame[c].map(lambda v: v is None or v == "" or v != v).all()]
    return frame[filled]


def _table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = []
        for column, value in row.items():
            css = f' class="{value}"' if column == "verdict" else (
                f' class="{column}"' if column in ("note", "reason", "dropped", "error", "value")
                else "")
            cells.append(f"<td{css}>{html.escape(_format(value))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    # a table wider than the page scrolls inside its own box instead of widening the page
    return (f'<div class="wide"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _error_at_nfe_tables(at_nfe: pd.DataFrame) -> str:
    """Samplers × NFE ≈ 10, 20, 50, 100 per error metric: ≈ marks a value interpolated in
    log–log between two runs, the best of each column is highlighted, blank is outside a
    sampler's runs (never extrapolated)."""
    parts = []
    for metric, part in at_nfe.groupby("metric", sort=False):
        targets = sorted(part.nfe.unique())
        head = "".join(f"<th>NFE {n}</th>" for n in targets)
        rows = []
        for sampler, cells in part.groupby("sampler", sort=False):
            cells = cells.set_index("nfe")
            row = []
            for n in targets:
                value, best, at_floor = cells.value[n], bool(cells.best[n]), bool(cells.at_floor[n])
                text = "" if value != value else ("≈" if cells.interpolated[n] else "") + f"{value:.3g}"
                css = ' class="best"' if best else ' class="floor"' if at_floor else ""
                row.append(f"<td{css}>{html.escape(text)}</td>")
            rows.append(f"<tr><th>{html.escape(sampler)}</th>{''.join(row)}</tr>")
        parts.append(f"<h4>{html.escape(metric)}</h4><table><thead><tr><th>sampler</th>{head}"
                     f"</tr></thead><tbody>{''.join(rows)}</tbody></table>")
    return ("<h3>Error at a given cost</h3><p>Which sampler at NFE ≈ 10, 20, 50, 100: read off "
            "each sampler's measured curve; ≈ marks a value interpolated in log–log between its "
            "two nearest runs, the best of each column is highlighted, grey values are not above "
            "the error floor (noise or round-off, not a ranking), a blank lies outside its runs "
            "(never extrapolated).</p>" + "".join(parts))


def _measured(rows: pd.DataFrame) -> list[str]:
    """Each row's measured order "m ± CI" ("m" without a finite CI, "" without an order)."""
    return ["" if m != m else f"{m:.3f} ± {c:.3f}" if np.isfinite(c) else f"{m:.3f}"
            for m, c in zip(rows.measured_order, rows.ci95, strict=True)]


def _conformance(rows: pd.DataFrame, commands: list[str]) -> str:
    """The peer conformance table and, for each FAIL or unexplained disagreement, a finding
    with the numbers and the command that reproduces it."""
    shown = rows.assign(measured=_measured(rows))
    table = _table(shown[["library", "sampler", "declared_order", "order_source", "measured",
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
            "round-off is the floor of the precision the library computes in).</p>" + table
            + grids + (f"<p>Findings:</p><ul>{notes}</ul>" if notes else ""))


def _section_header(config_id: str, section: dict, frame: pd.DataFrame) -> str:
    config = section.get("config") or {key: frame[key].iloc[0] for key in _SECTION_KEYS if key in frame}
    shown = {key: config[key] for key in _SECTION_KEYS if key in config}
    score = f" ({config['score']} score)" if isinstance(config.get("score"), str) else ""
    title = (f"{config.get('schedule', '?')} — {config.get('problem', '?')}{score}, "
             f"d = {config.get('dim')}, {config.get('dtype')}, grid {config.get('grid')}, "
             f"seed {config.get('seed')}")
    table = pd.DataFrame({"setting": list(shown),
                          "value": [json.dumps(v, default=str) if isinstance(v, dict) else v
                                    for v in shown.values()]})
    commands = "".join(f"<li><code>{html.escape(c)}</code></li>" for c in section.get("commands", []))
    return (f"<h2>{html.escape(title)}</h2><p>Configuration <code>{config_id}</code>: every row "
            "below was computed with exactly these settings.</p>" + _table(table)
            + (f"<p>Produced by:</p><ul>{commands}</ul>" if commands else ""))


def _section(config_id: str, frames: StudyFrames) -> str:
    frame = frames.results[frames.results.config_id == config_id]
    ok = frame[frame.status == "ok"]
    part = [_section_header(config_id, frames.sections.get(config_id, {}), frame)]
    at_nfe = frames.at_nfe[frames.at_nfe.config_id == config_id] if not frames.at_nfe.empty \
        else frames.at_nfe
    if not at_nfe.empty:
        part.append(_error_at_nfe_tables(at_nfe))
    for metric, rows in ok.groupby("metric", sort=False):
        description = f"{metric} versus NFE"
        if rows.floor.notna().any():
            description += ("; grey band: below the floor, values there are not discretisation "
                            "error (a Monte Carlo floor dominates values up to 3× it)")
        part.append(f"<figure>{metric_figure(rows, metric)}<figcaption>{html.escape(description)}"
                    "; dashed lines: stochastic samplers; thin dashed: reference slopes."
                    "</figcaption></figure>")
    exact = _exact_score_sibling(frames.results, frame)
    if exact is not None:
        for metric, rows in ok.groupby("metric", sort=False):
            beside = exact[(exact.metric == metric) & (exact.status == "ok")]
            if not beside.empty:
                part.append(f"<figure>{learned_versus_exact_figure(rows, beside, metric)}"
                            f"<figcaption>{html.escape(metric)}: the learned score (solid) "
                            "beside the exact score (dotted) on the same problem, samplers and "
                            "step counts; where they part, the score error dominates the "
                            "discretisation error.</figcaption></figure>")
    orders = frames.orders[frames.orders.config_id == config_id] if not frames.orders.empty else frames.orders
    if not orders.empty:
        part.append("<h3>Measured versus declared order</h3>"
                    + _table(_filled_columns(orders.drop(
                        columns=["config_id", "schedule", "problem", "library"], errors="ignore"))))
        conformance = frames.conformance
        if not conformance.empty and (conformance.config_id == config_id).any():
            part.append(_conformance(conformance[conformance.config_id == config_id],
                                     frames.sections.get(config_id, {}).get("commands", [])))
        first = orders.metric.iloc[0]
        repeats = (frames.sections.get(config_id, {}).get("config") or {}).get("timing_repeats", 1)
        timing = (f"the median of {repeats} timings, bars from the fastest to the slowest"
                  if repeats > 1 else "one timing after a warm-up run (--timing-repeats for more)")
        part.append(f"<figure>{work_precision_figure(ok[ok.metric == first], first)}<figcaption>"
                    f"Work–precision: error versus wall time of a batch run ({timing})."
                    "</figcaption></figure>")
    samples = frames.samples
    if not samples.empty and (samples.config_id == config_id).any():
        part.append(f"<figure>{scatter_figure(samples[samples.config_id == config_id])}<figcaption>"
                    "Output samples per sampler and step count.</figcaption></figure>")
    score_errors = frames.score_errors
    if not score_errors.empty and (score_errors.config_id == config_id).any():
        errors = score_errors[score_errors.config_id == config_id]
        bound, stderr = errors.bound.iloc[0], errors.bound_stderr.iloc[0]
        part.append(f"<figure>{score_error_figure(errors)}<figcaption>The score-error floor: "
                    f"e(t) of the learned score against the exact one, ±2 standard errors "
                    f"({SCORE_ERROR_NOTE}). ½∫g²(t) e(t) dt = {bound:.4g} ± {stderr:.2g}: the "
                    "right side of note 001's KL bound for the reverse SDE on this score (its "
                    "starts are exact p_T samples, so KL(p_T‖π) = 0); no step count brings the "
                    "errors below what the learned score allows — compare the exact-score "
                    "section.</figcaption></figure>")
    paths = frames.trajectories
    if not paths.empty and (paths.config_id == config_id).any():
        part.append(f"<figure>{trajectory_figure(paths[paths.config_id == config_id])}"
                    "<figcaption>From noise to data: reverse-SDE paths versus PF-ODE paths from "
                    "the same starts (1-D two-component mixture); both end in the same "
                    "marginal. The x axis is cut at ±4: near t_max the paths start wider."
                    "</figcaption></figure>")
    failed = frame[frame.status != "ok"].drop_duplicates("unit_id")
    if not failed.empty:
        part.append("<h3>Diverged or failed runs</h3>"
                    + _table(failed[["sampler", "steps", "status", "error"]]))
    return "\n".join(part)


def _exact_score_sibling(results: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame | None:
    """For a learned-score section, the rows of its exact-score twin (same schedule, problem,
    dim, grid, seed; ``score: exact``); None otherwise."""
    if "score" not in frame or frame.empty or frame.score.iloc[0] != "learned":
        return None
    keys = [key for key in ("schedule", "problem", "problem_params", "dim", "grid", "seed",
                            "batch", "dtype") if key in frame]
    first = frame.iloc[0]
    match = results.score.eq("exact")
    for key in keys:
        match &= results[key].astype(str).eq(str(first[key]))
    return results[match] if match.any() else None


def _environment(results: pd.DataFrame) -> pd.DataFrame:
    import scipy
    import sympy
    import torch

    items = {
        "rendered": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "sympy": sympy.__version__,
        "pandas": pd.__version__,
        "git commits of the rows": ", ".join(sorted(results.git_commit.dropna().astype(str).unique()))
        if "git_commit" in results else "",
        "rows": str(len(results)),
    }
    return pd.DataFrame({"item": list(items), "value": list(items.values())})


def render_report(frames: StudyFrames, progress: bool = False) -> str:
    """The HTML text of the report: one section per configuration in ``frames.results``."""
    if frames.results.empty:
        raise ValueError("cannot render a report without results")
    config_ids = list(dict.fromkeys(frames.results.config_id))
    sections = [_section(config_id, frames)
                for config_id in tqdm(config_ids, desc="report", unit="section", disable=not progress)]
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>sdebench report</title>"
        f"<style>{_STYLE}</style></head><body><h1>sdebench convergence report</h1>"
        "<p>Errors are measured against exact answers (the exact output law for Gaussian data). "
        f"{html.escape(VERDICT_LEGEND)}</p>"
        + "\n".join(sections)
        + "<h2>Environment</h2>" + _table(_environment(frames.results))
        + "</body></html>"
    )


def write_report(frames: StudyFrames, path: str | Path, progress: bool = False) -> Path:
    """Write the report atomically and return its path."""
    from sdebench.studies.store import atomic_write_text

    path = Path(path)
    atomic_write_text(path, render_report(frames, progress))
    return path


def render_audit(table: pd.DataFrame, results: pd.DataFrame, command: str) -> str:
    """The field audit's page (:mod:`sdebench.studies.audit`): per stage, one row per library
    and sampler — declared and measured order, verdict and reason, W₂ at NFE 10/20/50, agreement
    with sdebench's twin, library version, finding — then the environment. It renders the
    table it is given; nothing is fitted here."""
    counts = table.verdict.value_counts()
    summary = ", ".join(f"{verdict} {counts[verdict]}" for verdict in counts.index)
    stages = []
    for stage, rows in table.groupby("stage", sort=False):
        shown = rows.assign(
            measured=_measured(rows),
            finding=[f"experiments/findings/{name}" if name else "" for name in rows.finding])
        columns = ["library", "sampler", "declared_order", "measured", "fit_steps", "verdict",
                   "reason", "nfe_10", "nfe_20", "nfe_50", "twin", "agreement", "agrees",
                   "version", "finding"]
        schedule = rows.schedule.dropna()
        title = f"{stage}" + (f" — {schedule.iloc[0]}" if not schedule.empty else "")
        stages.append(f"<h2>{html.escape(title)}</h2>" + _table(_filled_columns(shown[columns])))
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>sdebench field audit</title>"
        f"<style>{_STYLE}</style></head><body><h1>sdebench field audit</h1>"
        f"<p>Reproduce: <code>{html.escape(command)}</code></p>"
        f"<p>{len(table)} rows: {html.escape(summary)}. Each peer library's sampler runs in its own "
        "loop on Gaussian data (d = 4) with the exact network; its exact output law is probed, so "
        "every error is measured against the truth. nfe_10/20/50: W₂ to the truth at that cost, "
        "interpolated on the sampler's measured curve (blank outside it, or at its error floor). "
        "agrees: agreement with sdebench's implementation of the same method on the peer's grid. "
        "REFUSED: the stage's schedule rules the sampler out, for the reason given. A finding "
        "links a standalone repro and a write-up for the library's tracker. "
        f"{html.escape(VERDICT_LEGEND)}</p>"
        + "\n".join(stages)
        + "<h2>Environment</h2>" + _table(_environment(results))
        + "</body></html>"
    )
