"""Convergence studies: samplers × step counts on problems with exact answers → tidy frames.

:func:`run_study` resolves a :class:`~sdebench.studies.config.StudyConfig` into units, runs the
units its store does not hold yet (resume), and returns a :class:`StudyResult`: one row per
measurement (each row carries the full configuration that made it), the order fits, 2-D sample
points and SDE-versus-PF-ODE trajectories. Reports render these frames; they never run a sampler.
"""

from __future__ import annotations

import json
import math
import traceback
from dataclasses import dataclass, field

import pandas as pd
from tqdm.auto import tqdm

from sdebench.problems.protocol import SAMPLES
from sdebench.seeding import generator
from sdebench.solvers.context import NonFiniteError
from sdebench.solvers.grids import make_grid
from sdebench.solvers.loop import sample
from sdebench.solvers.noise import GaussianIncrements
from sdebench.studies.config import StudyConfig, Unit, resolve_sections, resolve_units
from sdebench.studies.metrics import UnitRun
from sdebench.studies.order import order_table
from sdebench.studies.provenance import git_commit
from sdebench.studies.store import ResultStore
from sdebench.studies.trajectories import trajectory_frame

SCATTER_POINTS = 400


@dataclass
class StudyResult:
    """What a study produced: ``results`` (rows of this study's units), ``orders`` (their fits),
    ``samples`` (2-D output points), ``trajectories``, and ``sections`` (config_id → the
    configuration and the commands that ran it)."""

    results: pd.DataFrame
    orders: pd.DataFrame
    samples: pd.DataFrame = field(default_factory=pd.DataFrame)
    trajectories: pd.DataFrame = field(default_factory=pd.DataFrame)
    sections: dict = field(default_factory=dict)


def _flat(config: dict) -> dict:
    """Nested values (parameter dicts) as JSON text, so every row is one flat record."""
    return {key: json.dumps(value, sort_keys=True, default=str) if isinstance(value, dict | list)
            else value for key, value in config.items()}


def _unit_columns(unit: Unit) -> dict:
    solver = unit.solver
    return {
        **_flat(unit.section.config),
        "config_id": unit.section.config_id, "unit_id": unit.unit_id,
        "sampler": unit.sampler,
        "sampler_index": unit.config["sampler_index"],
        "sampler_params": json.dumps(unit.config["sampler_params"], sort_keys=True, default=str),
        "sampler_class": unit.config["sampler_class"],
        "steps": unit.steps,
        "stochastic": solver.stochastic,
        "declared_order": solver.order, "declared_strong_order": solver.strong_order,
        "order_note": getattr(solver, "order_note", ""),
        "git_commit": git_commit(),
    }


def run_unit(config: StudyConfig, unit: Unit) -> tuple[list[dict], list[dict]]:
    """All measurements of one unit, and up to 400 output points of a 2-D problem. A run whose
    model output or state turns non-finite is recorded as ``diverged`` (value ∞), one that
    raises as ``failed`` with its error; neither stops the study."""
    run = UnitRun(unit.section.problem, unit.solver, unit.steps, grid=config.grid,
                  batch=config.batch, seed=config.seed,
                  strong_reference_factor=config.strong_reference_factor,
                  path_times=unit.path_times, timing_repeats=config.timing_repeats)
    base = _unit_columns(unit)
    try:
        batch = run.batch_run
        base.update(nfe=batch.nfe, step_size=float((run.ts[:-1] - run.ts[1:]).abs().max()),
                    wall_time=batch.wall_time, wall_time_min=min(batch.timings),
                    wall_time_max=max(batch.timings))
        rows = []
        for metric in unit.metrics:
            measurement = metric(run)
            rows.append({**base, "metric": metric.name, "metric_order": metric.order or "",
                         "status": "ok", "error": "", **vars(measurement)})
    except NonFiniteError as error:
        return _outcome_rows(base, unit, "diverged", str(error), math.inf), []
    except Exception as error:  # a user plugin's bug must not lose the rest of the study
        detail = "".join(traceback.format_exception_only(error)).strip()
        return _outcome_rows(base, unit, "failed", detail, math.nan), []
    points = []
    problem = unit.section.problem
    if problem.dim == 2 and SAMPLES in problem.capabilities:
        xy = batch.x[:SCATTER_POINTS].detach().cpu().double().tolist()
        points = [{"config_id": unit.section.config_id, "unit_id": unit.unit_id,
                   "schedule": unit.section.schedule_spec, "sampler": unit.sampler,
                   "steps": unit.steps, "point": i, "x": x, "y": y} for i, (x, y) in enumerate(xy)]
    return rows, points


def _outcome_rows(base: dict, unit: Unit, status: str, error: str, value: float) -> list[dict]:
    base = {"nfe": math.nan, "step_size": math.nan, "wall_time": math.nan,
            "wall_time_min": math.nan, "wall_time_max": math.nan, **base}
    return [{**base, "metric": metric.name, "metric_order": metric.order or "", "status": status,
             "error": error, "value": value, "stderr": math.nan, "floor": math.nan,
             "floor_kind": "", "reference": math.nan} for metric in unit.metrics]


def warm_up(units: list[Unit]) -> None:
    """Run each section's first sampler once on two samples, untimed: the first run of a process
    pays for lazy initialisation (torch, lambdified schedule functions, caches), 10–100× a
    later run's cost, which would show as a false spike in work–precision diagrams."""
    seen = set()
    for unit in units:
        if unit.section.config_id in seen:
            continue
        seen.add(unit.section.config_id)
        problem = unit.section.problem
        ts = make_grid(unit.section.config["grid"], problem.schedule, 2, device=problem.device)
        x = problem.sample_marginal(ts[0], 2, generator(0, "warm_up", device=problem.device))
        try:
            sample(unit.solver, problem.denoiser, problem.schedule, x, ts,
                   noise=GaussianIncrements(0))
        except Exception:  # noqa: BLE001 - the unit itself records what goes wrong, as a row
            pass


def run_study(config: StudyConfig, store: ResultStore | None = None, *, progress: bool = True,
              command: str = "", trajectories: bool = True) -> StudyResult:
    """Run every unit of ``config`` that ``store`` does not hold (all of them without a store),
    writing each finished unit at once; return this study's frames. With a store, its views
    (results.csv, orders.csv, …) are rewritten at the end for all the sections it holds."""
    sections = resolve_sections(config)
    units = resolve_units(config, sections)
    if not units:
        raise ValueError(f"no metric applies to problem {config.problem!r} with these samplers")
    if store is None:
        return _run_in_memory(config, sections, units, progress, trajectories)
    with store:
        for section in sections:
            store.record_section(section.config_id, section.config, command)
        done = store.completed()
        todo = [unit for unit in units if unit.unit_id not in done]
        warm_up(todo)
        for unit in tqdm(todo, disable=not progress, desc="study", unit="unit"):
            rows, points = run_unit(config, unit)
            store.write_unit(unit.unit_id, rows, points)
        if trajectories:
            stored = store.trajectories()
            for section in sections:
                if stored.empty or section.config_id not in set(stored.config_id):
                    store.write_trajectories(section.config_id,
                                             trajectory_frame(section.schedule_spec, config.seed))
        results, samples = store.frames()
        paths = store.trajectories()
        store.write_views({"results": results, "orders": order_table(results), "samples": samples,
                           "trajectories": paths})
        sections_on_disk = store.sections()
    ours = {unit.unit_id for unit in units}
    config_ids = {section.config_id for section in sections}
    results = results[results.unit_id.isin(ours)].reset_index(drop=True)
    samples = samples[samples.unit_id.isin(ours)].reset_index(drop=True) if not samples.empty else samples
    paths = paths[paths.config_id.isin(config_ids)].reset_index(drop=True) if not paths.empty else paths
    return StudyResult(results, order_table(results), samples, paths,
                       {key: value for key, value in sections_on_disk.items() if key in config_ids})


def _run_in_memory(config, sections, units, progress, trajectories) -> StudyResult:
    rows, points = [], []
    warm_up(units)
    for unit in tqdm(units, disable=not progress, desc="study", unit="unit"):
        unit_rows, unit_points = run_unit(config, unit)
        rows.extend(unit_rows)
        points.extend(unit_points)
    results = pd.DataFrame(rows)
    paths = pd.concat([trajectory_frame(section.schedule_spec, config.seed).assign(
        config_id=section.config_id) for section in sections], ignore_index=True) \
        if trajectories else pd.DataFrame()
    return StudyResult(results, order_table(results), pd.DataFrame(points), paths,
                       {s.config_id: {"config": s.config, "commands": []} for s in sections})
