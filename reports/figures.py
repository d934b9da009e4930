"""The report's figures, each drawn from stored frames and returned as inline SVG.

Every figure has a title and axis labels with units; a legend sits outside the axes, so it never
covers data; each sampler keeps one style on every figure of a section (:func:`sampler_styles`).
"""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

OKABE_ITO = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7",
             "#999999")
"""Okabe & Ito's colour-blind-safe palette ("Color Universal Design", 2008), its yellow
(#F0E442, unreadable on white) replaced by grey."""
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "<", ">", "*", "h", "p", "d", "8", "H")
LEGEND_ROWS = 22
"""Legend entries per column: more samplers than this make a second column."""
_UNITS = {"kl": "nats", "nll": "nats", "|nll − exact|": "nats"}
"""Units of the metrics that are not distances in the data's units."""


def metric_label(metric: str) -> str:
    """The axis label of a metric: its name and unit."""
    return f"{metric} [{_UNITS.get(metric, 'data units')}]"


def svg(figure) -> str:
    """The figure as an inline SVG element (the figure is closed)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def family_order(frame: pd.DataFrame) -> list[str]:
    """The samplers of ``frame`` grouped by family — library in order of appearance, ODE
    samplers before stochastic ones — in the study's order within a family."""
    firsts = frame.drop_duplicates("sampler")
    libraries = {name: i for i, name in enumerate(dict.fromkeys(
        firsts.library if "library" in firsts else ["sdebench"] * len(firsts)))}
    keys = [(libraries[row.get("library", "sdebench")], bool(row.get("stochastic", False)), i)
            for i, (_, row) in enumerate(firsts.iterrows())]
    return [name for _, name in sorted(zip(keys, firsts.sampler, strict=True))]


def sampler_styles(frame: pd.DataFrame) -> dict:
    """sampler → matplotlib style. The k-th sampler in :func:`family_order` takes colour k mod 8
    and line style ⌊k/8⌋ (so up to 32 samplers have distinct colour–line pairs) and a marker of
    its own; stochastic samplers' markers are hollow, ODE samplers' filled."""
    stochastic = frame.drop_duplicates("sampler").set_index("sampler")["stochastic"] \
        if "stochastic" in frame else pd.Series(dtype=bool)
    styles = {}
    for k, name in enumerate(family_order(frame)):
        colour = OKABE_ITO[k % len(OKABE_ITO)]
        hollow = bool(stochastic.get(name, False))
        styles[name] = {"color": colour, "linestyle": LINESTYLES[(k // len(OKABE_ITO)) % 4],
                        "marker": MARKERS[k % len(MARKERS)],
                        "markerfacecolor": "white" if hollow else colour}
    return styles


def _legend_outside(axis, title: str | None = None) -> None:
    """The legend to the right of the axes, in as many columns as :data:`LEGEND_ROWS` asks."""
    handles, labels = axis.get_legend_handles_labels()
    if not handles:
        axis.text(0.5, 0.5, "nothing to draw", transform=axis.transAxes, ha="center")
        return
    axis.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                borderaxespad=0.0, ncol=math.ceil(len(labels) / LEGEND_ROWS), title=title,
                title_fontsize=7)


def _plot_curves(axis, frame: pd.DataFrame, styles: dict, linestyle: str | None = None,
                 suffix: str = "") -> pd.DataFrame:
    """One line per sampler (family order) of its positive, finite values against NFE, with ±2
    standard error bars where the metric has them; returns the rows drawn."""
    drawn = frame[(frame.value > 0) & np.isfinite(frame.value)]
    for sampler in [name for name in styles if name in set(drawn.sampler)]:
        group = drawn[drawn.sampler == sampler].sort_values("nfe")
        style = styles[sampler] if linestyle is None else {**styles[sampler], "linestyle": linestyle}
        stderr = group.stderr if "stderr" in group and group.stderr.notna().any() else None
        axis.errorbar(group.nfe, group.value, yerr=None if stderr is None else 2 * stderr,
                      markersize=4, capsize=2, label=f"{sampler} ({suffix})" if suffix else sampler,
                      **style)
    return drawn


def metric_figure(frame: pd.DataFrame, metric: str, title: str) -> str:
    """:func:`metric_plot` as SVG."""
    return svg(metric_plot(frame, metric, title))


def metric_plot(frame: pd.DataFrame, metric: str, title: str):
    """Log-log ``metric`` against NFE, one line per sampler; its floor (round-off or Monte
    Carlo) as a grey band, a diagnostic's reference value as a dotted line, and the declared
    orders' reference slopes (thin dashed, above the data, named in the title)."""
    figure, axis = plt.subplots(figsize=(8, 5))
    positive = _plot_curves(axis, frame, sampler_styles(frame))
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
    slopes = _reference_slopes(axis, positive)
    if slopes:
        title += f"; dashed: slopes {', '.join(f'−{order:g}' for order in slopes)}"
    axis.set_title(title, fontsize=9)
    axis.set_xlabel("NFE [model evaluations]")
    axis.set_ylabel(metric_label(metric))
    axis.grid(True, which="both", alpha=0.3)
    _legend_outside(axis, "filled: ODE, hollow: SDE")
    return figure


def _reference_slopes(axis, frame: pd.DataFrame) -> list[float]:
    """Thin dashed lines of slope −p for each order p declared for this metric (the order or
    the strong order) by the samplers drawn, from twice the largest value at the smallest NFE
    (above the data there), unlabelled in the axes; returns the orders drawn (none for a
    diagnostic, or a linear y axis)."""
    if frame.empty or axis.get_yscale() != "log" or frame.nfe.nunique() < 2:
        return []
    column = {"order": "declared_order", "strong_order": "declared_strong_order"}.get(
        frame.metric_order.iloc[0] if "metric_order" in frame else "")
    if column is None or column not in frame:  # a diagnostic (e.g. KL): no declared slope
        return []
    declared = sorted({float(v) for v in frame[column].dropna()})
    nfe = np.array([frame.nfe.min(), frame.nfe.max()], float)
    start = 2 * frame[frame.nfe == frame.nfe.min()].value.max()
    low, high = axis.get_ylim()
    for order in declared:
        end = min(nfe[1], nfe[0] * (start / frame.value.min()) ** (1 / order))
        axis.plot([nfe[0], end], [start, start * (end / nfe[0]) ** (-order)], "k--",
                  linewidth=0.6, alpha=0.5)
    axis.set_ylim(low, max(high, 1.5 * start))
    return declared


def learned_versus_exact_figure(learned: pd.DataFrame, exact: pd.DataFrame, metric: str,
                                title: str) -> str:
    """``metric`` against NFE on the learned score (solid) and on the exact score (dotted, same
    colour and marker): where they part, the score error has overtaken the discretisation
    error; the exact-score curve alone is the discretisation error."""
    figure, axis = plt.subplots(figsize=(8, 5))
    styles = sampler_styles(pd.concat([learned, exact]))
    for frame, linestyle, suffix in ((learned, "-", "learned"), (exact, ":", "exact score")):
        _plot_curves(axis, frame, styles, linestyle, suffix)
    axis.set_xscale("log")
    axis.set_title(title, fontsize=9)
    axis.set_xlabel("NFE [model evaluations]")
    axis.set_ylabel(metric_label(metric))
    axis.grid(True, which="both", alpha=0.3)
    _legend_outside(axis)
    return svg(figure)


def work_precision_figure(frame: pd.DataFrame, metric: str, title: str) -> str:
    """Error against the median wall time of a batch run, bars from the fastest to the slowest
    of its repeated timings (work–precision diagram)."""
    figure, axis = plt.subplots(figsize=(8, 5))
    styles = sampler_styles(frame)
    frame = frame[(frame.value > 0) & np.isfinite(frame.value) & (frame.wall_time > 0)]
    for sampler in [name for name in styles if name in set(frame.sampler)]:
        group = frame[frame.sampler == sampler].sort_values("wall_time")
        spread = None
        if "wall_time_min" in group and (group.wall_time_max > group.wall_time_min).any():
            spread = [group.wall_time - group.wall_time_min, group.wall_time_max - group.wall_time]
        axis.errorbar(group.wall_time, group.value, xerr=spread, markersize=4, capsize=2,
                      label=sampler, **styles[sampler])
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_title(title, fontsize=9)
    axis.set_xlabel("wall time of one batch run [s]")
    axis.set_ylabel(metric_label(metric))
    axis.grid(True, which="both", alpha=0.3)
    _legend_outside(axis, "filled: ODE, hollow: SDE")
    return svg(figure)


def scatter_figure(samples: pd.DataFrame) -> str:
    """Output points per sampler (rows) at up to three step counts (columns), as SVG."""
    return svg(scatter_panels(samples))


def scatter_panels(samples: pd.DataFrame):
    """The matplotlib figure of :func:`scatter_figure` (constrained layout: titles never run
    into the tick labels of the row above)."""
    samplers = list(dict.fromkeys(samples.sampler))
    all_steps = sorted(samples.steps.unique())
    steps = sorted({all_steps[0], all_steps[len(all_steps) // 2], all_steps[-1]})
    figure, axes = plt.subplots(len(samplers), len(steps), figsize=(2.6 * len(steps), 2.5 * len(samplers)),
                                squeeze=False, constrained_layout=True)
    figure.suptitle("Output samples (first two coordinates) per sampler and step count",
                    fontsize=9)
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
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    figure.suptitle("Score error of the learned network against the exact score", fontsize=9)
    band = 2 * frame.score_error_stderr
    for axis, values, label in ((axes[0], frame.score_error, "e(t) = E‖s_θ − ∇log p_t‖²"),
                                (axes[1], frame.g2 * frame.score_error, "g²(t) e(t)")):
        scale = values / frame.score_error.where(frame.score_error > 0)
        axis.plot(frame.sigma, values, marker="o", markersize=3, color=OKABE_ITO[4])
        axis.fill_between(frame.sigma, (values - band * scale).clip(lower=1e-300),
                          values + band * scale, color=OKABE_ITO[4], alpha=0.2, linewidth=0)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("σ(t) [data units]")
        axis.set_title(label, fontsize=9)
    return svg(figure)


def trajectory_figure(trajectories: pd.DataFrame) -> str:
    """Paths from noise (left) to data (right): reverse SDE versus PF-ODE, same starts."""
    kinds = list(dict.fromkeys(trajectories.kind))
    figure, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 3.8), sharey=True,
                                squeeze=False, constrained_layout=True)
    figure.suptitle("From noise to data: paths from the same starts", fontsize=9)
    for axis, kind in zip(axes[0], kinds, strict=True):
        for _, path in trajectories[trajectories.kind == kind].groupby("path"):
            axis.plot(path.t, path.x, linewidth=0.7, alpha=0.7)
        axis.set_xscale("log")
        axis.set_ylim(-4, 4)
        axis.invert_xaxis()
        axis.set_title(kind, fontsize=9)
        axis.set_xlabel("t [diffusion time, log scale, decreasing]")
    axes[0, 0].set_ylabel("x [data units]")
    return svg(figure)
