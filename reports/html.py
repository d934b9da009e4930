"""Render study DataFrames into one self-contained HTML page (inline SVG, no scripts, no network).

Reports only render: every number on the page comes from the DataFrame passed in.
"""

from __future__ import annotations

import datetime
import html
import io
import platform
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sdebench.studies.order import VERDICT_LEGEND, order_table  # noqa: E402

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em}
table{border-collapse:collapse;font-size:.85em;margin:1em 0}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:right}th{background:#f3f3f3}
td.note{text-align:left;max-width:420px}
.PASS{background:#dff5df}.FAIL{background:#f8d7d7}.ABOVE{background:#fff4cc}
figure{margin:1em 0}figcaption{font-size:.85em;color:#555}
"""


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def error_vs_nfe_figure(frame: pd.DataFrame, metric: str) -> str:
    """Log-log error against NFE, one line per sampler, with dashed reference slopes 1, 2, 3."""
    figure, axis = plt.subplots(figsize=(8, 5))
    for sampler, group in frame.groupby("sampler", sort=False):
        group = group.sort_values("nfe")
        axis.loglog(group.nfe, group.value, marker="o", markersize=3, label=sampler)
    nfe = np.array([frame.nfe.min(), frame.nfe.max()], float)
    anchor = float(frame.value.median())
    for order in (1, 2, 3):
        axis.loglog(nfe, anchor * (nfe / nfe[0]) ** (-order), "k--", linewidth=0.6, alpha=0.5)
        axis.annotate(f"slope −{order}", (nfe[1], anchor * (nfe[1] / nfe[0]) ** (-order)),
                      fontsize=7, alpha=0.7)
    axis.set_xlabel("NFE (model evaluations)")
    axis.set_ylabel(metric)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7, ncol=2)
    return _svg(figure)


def work_precision_figure(frame: pd.DataFrame, metric: str) -> str:
    """Error against wall time of a batch run (work–precision diagram)."""
    figure, axis = plt.subplots(figsize=(8, 5))
    for sampler, group in frame.groupby("sampler", sort=False):
        group = group.sort_values("wall_time")
        axis.loglog(group.wall_time, group.value, marker=".", label=sampler)
    axis.set_xlabel("wall time of one batch run [s]")
    axis.set_ylabel(metric)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7, ncol=2)
    return _svg(figure)


def scatter_figure(samples: pd.DataFrame) -> str:
    """Output points per sampler (rows) at up to three step counts (columns)."""
    samplers = list(dict.fromkeys(samples.sampler))
    all_steps = sorted(samples.steps.unique())
    steps = sorted({all_steps[0], all_steps[len(all_steps) // 2], all_steps[-1]})
    figure, axes = plt.subplots(len(samplers), len(steps), figsize=(2.6 * len(steps), 2.4 * len(samplers)),
                                squeeze=False)
    converged = samples[samples.steps == all_steps[-1]]
    limits = [(converged[c].quantile(0.01), converged[c].quantile(0.99)) for c in ("x", "y")]
    limits = [(lo - 0.3 * (hi - lo), hi + 0.3 * (hi - lo)) for lo, hi in limits]
    for i, sampler in enumerate(samplers):
        for j, n in enumerate(steps):
            points = samples[(samples.sampler == sampler) & (samples.steps == n)]
            axes[i, j].scatter(points.x, points.y, s=2, alpha=0.5)
            axes[i, j].set_xlim(*limits[0])
            axes[i, j].set_ylim(*limits[1])
            axes[i, j].set_title(f"{sampler}, {n} steps", fontsize=8)
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


def _table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = []
        for column, value in row.items():
            text = f"{value:.3f}" if isinstance(value, float) else str(value)
            css = {"verdict": f' class="{value}"', "note": ' class="note"'}.get(column, "")
            cells.append(f"<td{css}>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _environment(results: pd.DataFrame, command: str) -> pd.DataFrame:
    import scipy
    import sympy
    import torch

    items = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": command,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "sympy": sympy.__version__,
        "pandas": pd.__version__,
        "devices": ", ".join(sorted(results.device.astype(str).unique())),
        "dtypes": ", ".join(sorted(results.dtype.astype(str).unique())),
        "rows": str(len(results)),
    }
    return pd.DataFrame({"item": list(items), "value": list(items.values())})


def render_report(results: pd.DataFrame, command: str = "", samples: pd.DataFrame | None = None,
                  trajectories: pd.DataFrame | None = None) -> str:
    """The HTML text of the report for a study DataFrame, optionally with 2-D output samples
    (columns sde, sampler, steps, x, y) and trajectories (columns sde, kind, path, t, x)."""
    if results.empty:
        raise ValueError("cannot render a report from an empty DataFrame")
    sections = []
    metric = "w2" if (results.metric == "w2").any() else "sliced_w2"
    for sde, frame in results.groupby("sde", sort=False):
        part = [f"<h2>SDE: {html.escape(str(sde))}</h2>"]
        errors = frame[frame.metric == metric]
        if not errors.empty:
            part.append(f"<figure>{error_vs_nfe_figure(errors, metric)}<figcaption>{metric} to the "
                        "exact p<sub>t_min</sub> versus NFE; dashed: reference slopes.</figcaption></figure>")
            part.append(f"<figure>{work_precision_figure(errors, metric)}<figcaption>Work–precision: "
                        "error versus wall time of a batch run.</figcaption></figure>")
        if metric == "w2":
            table = order_table(frame).drop(columns=["problem", "metric"])
            part.append("<h3>Measured versus declared order</h3>" + _table(table))
        else:
            floor = frame[frame.metric == "sliced_w2_floor"].value.mean()
            part.append(f"<p>Monte Carlo floor of sliced W2 (two exact sample sets): {floor:.4f}. "
                        "Differences below it are sampling noise, not discretisation error.</p>")
        if samples is not None and (samples.sde == sde).any():
            part.append(f"<figure>{scatter_figure(samples[samples.sde == sde])}<figcaption>Output "
                        "samples per sampler and step count.</figcaption></figure>")
        if trajectories is not None and (trajectories.sde == sde).any():
            part.append(f"<figure>{trajectory_figure(trajectories[trajectories.sde == sde])}"
                        "<figcaption>From noise to data: reverse-SDE paths versus PF-ODE paths from "
                        "the same starts (1-D two-component mixture); both end in the same "
                        "marginal. The x axis is cut at ±4: near t_max the paths start wider."
                        "</figcaption></figure>")
        diverged = frame[frame.metric == "diverged"]
        if not diverged.empty:
            part.append("<h3>Diverged runs</h3>" + _table(diverged[["sampler", "steps", "order_note"]]))
        sections.append("\n".join(part))
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>sdebench report</title>"
        f"<style>{_STYLE}</style></head><body><h1>sdebench convergence report</h1>"
        "<p>Errors are measured against exact answers (the exact output law for Gaussian data). "
        f"{html.escape(VERDICT_LEGEND)}</p>"
        + "\n".join(sections)
        + "<h2>Environment</h2>" + _table(_environment(results, command))
        + "</body></html>"
    )


def write_report(results: pd.DataFrame, path: str | Path, command: str = "",
                 samples: pd.DataFrame | None = None, trajectories: pd.DataFrame | None = None) -> Path:
    """Write the report atomically and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(render_report(results, command, samples, trajectories), encoding="utf-8")
    temporary.replace(path)
    return path
