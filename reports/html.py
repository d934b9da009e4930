"""Render stored study frames into one self-contained HTML page (inline SVG, no scripts, no
network).

Reports only render: every number on the page comes from the frames passed in (results, the
analysis of :mod:`sdebench.studies.analysis`, sample points, trajectories, section
configurations); nothing is fitted or sampled here. The page is assembled here from its tables
(:mod:`sdebench.reports.tables`) and figures (:mod:`sdebench.reports.figures`). One section per
configuration (``config_id``): rows of different configurations are never drawn or tabulated
together. Each section opens with its answer — per sampler, verdict, error at the NFE budgets and
time per sample — and keeps the configuration that made it folded below.
"""

from __future__ import annotations

import datetime
import html
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from sdebench.reports import figures, tables
from sdebench.studies.analysis import Analysis
from sdebench.studies.learned import SCORE_ERROR_NOTE
from sdebench.studies.order import VERDICT_LEGEND

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1300px;margin:1.2em auto;color:#222}
h1{font-size:1.4em;margin:.2em 0}
h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin:.6em 0 .3em}
p.intro{margin:.3em 0}p.legend{font-size:.78em;color:#444;max-width:1250px}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:right}th{background:#f3f3f3}
table.answer td,table.answer th{padding:.15em .5em}table.answer tbody th{text-align:left}
td.note,td.reason,td.dropped,td.error,td.value{text-align:left;max-width:420px}
.PASS{background:#dff5df}.FAIL{background:#f8d7d7}.ABOVE{background:#fff4cc}
.INCONCLUSIVE{background:#e8e8f4}td.best{background:#dff5df;font-weight:bold}td.floor{color:#999}
figure{margin:1em 0}figure svg{max-width:100%;height:auto}figcaption{font-size:.85em;color:#555}
div.wide{overflow-x:auto;max-width:100%}details{margin:.5em 0}summary{cursor:pointer;color:#333}
code{background:#f5f5f5;padding:0 .2em}
"""
_SECTION_KEYS = ("schedule", "schedule_params", "problem", "problem_params", "score", "model_params",
                 "dim", "batch", "grid", "grid_params", "dtype", "device", "seed",
                 "sdebench_version", "code", "torch_version")


@dataclass
class StudyFrames:
    """What a report shows: ``results`` (one row per measurement), ``analysis`` (their orders,
    errors at the NFE budgets, conformance and answer, :func:`sdebench.studies.analysis.analyse`),
    ``samples`` (2-D points), ``trajectories``, ``sections`` (config_id → {config, commands}),
    ``score_errors`` (e(t) of learned-score sections, :mod:`sdebench.studies.learned`) and
    ``study`` (the study's directory, shown at the top; "" for a study run in memory)."""

    results: pd.DataFrame
    analysis: Analysis
    samples: pd.DataFrame = field(default_factory=pd.DataFrame)
    trajectories: pd.DataFrame = field(default_factory=pd.DataFrame)
    sections: dict = field(default_factory=dict)
    score_errors: pd.DataFrame = field(default_factory=pd.DataFrame)
    study: str = ""


def _of(frame: pd.DataFrame, config_id: str) -> pd.DataFrame:
    """The rows of ``frame`` in configuration ``config_id`` (an empty frame as it is)."""
    return frame[frame.config_id == config_id] if not frame.empty else frame


def _section_title(config: dict) -> str:
    score = config.get("score")
    score = f" ({score} score)" if isinstance(score, str) and score else ""
    return (f"{config.get('schedule', '?')} — {config.get('problem', '?')}{score}, "
            f"d = {config.get('dim')}, {config.get('dtype')}, grid {config.get('grid')}, "
            f"seed {config.get('seed')}")


def _configuration(config_id: str, config: dict, commands: list[str]) -> str:
    """The section's settings and the commands that produced it, folded."""
    shown = {key: config[key] for key in _SECTION_KEYS if key in config}
    settings = pd.DataFrame({"setting": list(shown),
                             "value": [json.dumps(v, default=str) if isinstance(v, dict) else v
                                       for v in shown.values()]})
    produced = "".join(f"<li><code>{html.escape(c)}</code></li>" for c in commands)
    return (f"<details><summary>Configuration <code>{config_id}</code> and the command that "
            "produced it: every row of this section was computed with exactly these settings"
            f"</summary>{tables.table(settings)}"
            + (f"<p>Produced by (paste into a shell to reproduce):</p><ul>{produced}</ul>"
               if produced else "") + "</details>")


def _section(config_id: str, frames: StudyFrames) -> str:
    frame = frames.results[frames.results.config_id == config_id]
    ok = frame[frame.status == "ok"]
    analysis = frames.analysis
    section = frames.sections.get(config_id, {})
    config = section.get("config") or {key: frame[key].iloc[0] for key in _SECTION_KEYS if key in frame}
    title = _section_title(config)
    part = [f"<h2>{html.escape(title)}</h2>", tables.answer(analysis, config_id),
            _configuration(config_id, config, section.get("commands", []))]
    part.append(tables.error_at_nfe_tables(_of(analysis.other_errors(), config_id)))
    for metric, rows in ok.groupby("metric", sort=False):
        description = f"{metric}: {tables.metric_definition(metric)}"
        if rows.floor.notna().any():
            description += ("; grey band: below the floor, values there are not discretisation "
                            "error (a Monte Carlo floor dominates values up to 3× it)")
        part.append(f"<figure>{figures.metric_figure(rows, metric, f'{metric} versus NFE — {title}')}"
                    f"<figcaption>{html.escape(description)}; thin dashed: reference slopes."
                    "</figcaption></figure>")
    exact = _exact_score_sibling(frames.results, frame)
    if exact is not None:
        for metric, rows in ok.groupby("metric", sort=False):
            beside = exact[(exact.metric == metric) & (exact.status == "ok")]
            if not beside.empty:
                figure = figures.learned_versus_exact_figure(
                    rows, beside, metric, f"{metric}: learned versus exact score — {title}")
                part.append(f"<figure>{figure}<figcaption>{html.escape(metric)}: the learned "
                            "score (solid) beside the exact score (dotted) on the same problem, "
                            "samplers and step counts; where they part, the score error "
                            "dominates the discretisation error.</figcaption></figure>")
    orders = _of(analysis.orders, config_id)
    if not orders.empty:
        part.append("<h3>Measured versus declared order</h3>"
                    + tables.table(tables.filled_columns(orders.drop(
                        columns=["config_id", "schedule", "problem", "library"], errors="ignore"))))
        conformance = _of(analysis.conformance, config_id)
        if not conformance.empty:
            part.append(tables.conformance(conformance, section.get("commands", [])))
        first = orders.metric.iloc[0]
        repeats = (section.get("config") or {}).get("timing_repeats", 1)
        timing = (f"the median of {repeats} timings, bars from the fastest to the slowest"
                  if repeats > 1 else "one timing after a warm-up run (--timing-repeats for more)")
        figure = figures.work_precision_figure(ok[ok.metric == first], first,
                                               f"Work–precision: {first} versus wall time — {title}")
        part.append(f"<figure>{figure}<figcaption>Work–precision: error versus wall time of a "
                    f"batch run ({timing}).</figcaption></figure>")
    samples = _of(frames.samples, config_id)
    if not samples.empty:
        part.append(f"<figure>{figures.scatter_figure(samples)}<figcaption>Output samples per "
                    "sampler and step count.</figcaption></figure>")
    errors = _of(frames.score_errors, config_id)
    if not errors.empty:
        bound, stderr = errors.bound.iloc[0], errors.bound_stderr.iloc[0]
        part.append(f"<figure>{figures.score_error_figure(errors)}<figcaption>The score-error "
                    f"floor: e(t) of the learned score against the exact one, ±2 standard errors "
                    f"({SCORE_ERROR_NOTE}). ½∫g²(t) e(t) dt = {bound:.4g} ± {stderr:.2g}: the "
                    "right side of note 001's KL bound for the reverse SDE on this score (its "
                    "starts are exact p_T samples, so KL(p_T‖π) = 0); no step count brings the "
                    "errors below what the learned score allows — compare the exact-score "
                    "section.</figcaption></figure>")
    paths = _of(frames.trajectories, config_id)
    if not paths.empty:
        part.append(f"<figure>{figures.trajectory_figure(paths)}"
                    "<figcaption>From noise to data: reverse-SDE paths versus PF-ODE paths from "
                    "the same starts (1-D two-component mixture); both end in the same "
                    "marginal. The x axis is cut at ±4: near t_max the paths start wider."
                    "</figcaption></figure>")
    failed = frame[frame.status != "ok"].drop_duplicates("unit_id")
    if not failed.empty:
        part.append("<h3>Diverged or failed runs</h3>"
                    + tables.table(failed[["sampler", "steps", "status", "error"]]))
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
    study = f" Study <code>{html.escape(frames.study)}</code>." if frames.study else ""
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>sdebench report</title>"
        f"<style>{_STYLE}</style></head><body><h1>sdebench convergence report</h1>"
        '<p class="intro">Errors are measured against exact answers (the exact output law for '
        "Gaussian data). Each section opens with its answer: per sampler, its verdict and its "
        f"error at each NFE budget.{study}</p>"
        + "\n".join(sections)
        + "<h2>Environment</h2>" + tables.table(_environment(frames.results))
        + "</body></html>"
    )


def write_report(frames: StudyFrames, path: str | Path, progress: bool = False) -> Path:
    """Write the report atomically and return its path."""
    from sdebench.studies.store import atomic_write_text

    path = Path(path)
    atomic_write_text(path, render_report(frames, progress))
    return path


def render_audit(table: pd.DataFrame, results: pd.DataFrame, command: str) -> str:
    """The field audit's page (:mod:`sdebench.peers.audit`): per stage, one row per library
    and sampler — declared and measured order, verdict and reason, W₂ at NFE 10/20/50, agreement
    with sdebench's twin, library version, finding — then the environment. It renders the
    table it is given; nothing is fitted here."""
    counts = table.verdict.value_counts()
    summary = ", ".join(f"{verdict} {counts[verdict]}" for verdict in counts.index)
    stages = []
    for stage, rows in table.groupby("stage", sort=False):
        shown = rows.assign(
            measured=tables.measured_orders(rows),
            finding=[f"experiments/findings/{name}" if name else "" for name in rows.finding])
        columns = ["library", "sampler", "declared_order", "measured", "fit_steps", "verdict",
                   "reason", "nfe_10", "nfe_20", "nfe_50", "twin", "agreement", "agrees",
                   "version", "finding"]
        schedule = rows.schedule.dropna()
        title = f"{stage}" + (f" — {schedule.iloc[0]}" if not schedule.empty else "")
        stages.append(f"<h2>{html.escape(title)}</h2>"
                      + tables.table(tables.filled_columns(shown[columns])))
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>sdebench field audit</title>"
        f"<style>{_STYLE}</style></head><body><h1>sdebench field audit</h1>"
        f"<p>Reproduce: <code>{html.escape(command)}</code></p>"
        f"<p>{len(table)} rows: {html.escape(summary)}. Each peer library's sampler runs in its own "
        "loop on Gaussian data (d = 4) with the exact network; its exact output law is probed, so "
        "every error is measured against the truth. nfe_10/20/50: W₂ to the truth at that cost, "
        "interpolated on the sampler's measured curve (blank outside it, or at its error floor). "
        "agrees: agreement with sdebench's implementation of the same method on the peer's grid. "
        "REFUSED: the stage's schedule rules the sampler out, for the reason given. NOT JUDGED: "
        "no exact answer can judge this configuration at all (e.g. a corrector whose step "
        "couples the batch's rows), for the reason given. A finding "
        "links a standalone repro and a write-up for the library's tracker. "
        f"{html.escape(VERDICT_LEGEND)}</p>"
        + "\n".join(stages)
        + "<h2>Environment</h2>" + tables.table(_environment(results))
        + "</body></html>"
    )
