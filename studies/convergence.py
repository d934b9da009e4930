"""Convergence studies: samplers × step counts on problems with exact answers → tidy frames.

:func:`run_study` resolves a :class:`~sdebench.studies.config.StudyConfig` into units, runs the
units its store does not hold yet (resume), and returns a :class:`StudyResult`: one row per
measurement (each row carries the full configuration that made it), the order fits, 2-D sample
points and SDE-versus-PF-ODE trajectories. Reports render these frames; they never run a sampler.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import pandas as pd
from tqdm.auto import tqdm

from sdebench.problems.model import LearnedScoreProblem
from sdebench.studies.analysis import Analysis, analyse
from sdebench.studies.config import (
    Section,
    StudyConfig,
    Unit,
    check_sections,
    resolve_sections,
    resolve_units,
)
from sdebench.studies.learned import score_error_frame
from sdebench.studies.order import order_table
from sdebench.studies.store import ResultStore
from sdebench.studies.trajectories import trajectory_frame
from sdebench.studies.units import run_unit, warm_up


@dataclass
class StudyResult:
    """What a study produced: ``results`` (rows of this study's units), ``analysis`` (their
    fitted orders, errors at the NFE budgets, conformance and answer:
    :mod:`sdebench.studies.analysis`; ``orders`` is its order table), ``samples`` (2-D output
    points), ``trajectories``, ``sections`` (config_id → the configuration and the commands that
    ran it) and ``score_errors`` (e(t) of learned-score sections, :mod:`sdebench.studies.learned`)."""

    results: pd.DataFrame
    analysis: Analysis
    samples: pd.DataFrame = field(default_factory=pd.DataFrame)
    trajectories: pd.DataFrame = field(default_factory=pd.DataFrame)
    sections: dict = field(default_factory=dict)
    score_errors: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def orders(self) -> pd.DataFrame:
        return self.analysis.orders


def _execute(config: StudyConfig, units: list[Unit], on_result, progress: bool, client,
             plugins: tuple[str, ...]) -> None:
    """Run ``units`` here, one after the other, or as dask tasks on ``client``; hand each
    (unit, rows, points) to ``on_result`` in this process as it completes."""
    if client is not None:
        from sdebench.studies.distributed import run_units

        run_units(client, config, units, on_result, plugins=plugins, progress=progress)
        return
    warm_up(units)
    for unit in tqdm(units, disable=not progress, desc="study", unit="unit"):
        on_result(unit, *run_unit(config, unit))


def run_study(config: StudyConfig, store: ResultStore | None = None, *, progress: bool = True,
              command: str = "", trajectories: bool = True, client=None,
              plugins: tuple[str, ...] = (), sections: list[Section] | None = None
              ) -> StudyResult:
    """Run every unit of ``config`` that ``store`` does not hold (all of them without a store),
    writing each finished unit at once; return this study's frames. With a store, its views
    (results.csv, orders.csv, …) are rewritten at the end for all the sections it holds.

    ``client``: a ``dask.distributed.Client``; units then run as its tasks
    (:mod:`sdebench.studies.distributed`) and this process alone writes the store. ``plugins``:
    modules the workers import first (those registering the study's names). ``sections``:
    ``resolve_sections(config)`` when the caller has them already (the command line resolves
    them to check the study before it runs), so that a ``--model`` is imported and its
    weights hashed once per study; resolved here otherwise."""
    if sections is None:
        sections = resolve_sections(config)
    check_sections(config, sections)
    units = resolve_units(config, sections)
    if not units:
        raise ValueError(f"no metric applies to problem {config.problem!r} with these samplers")
    if store is None:
        return _run_in_memory(config, sections, units, progress, trajectories, client, plugins)
    with store:
        for section in sections:
            store.record_section(section.config_id, section.config, command)
        done = store.completed()
        reused = sum(unit.unit_id in done for unit in units)
        if progress and reused:  # a resumed study says what it did not run again
            print(f"study: reused {reused} of {len(units)} units stored in {store.directory}, "
                  f"running {len(units) - reused}", file=sys.stderr)
        _execute(config, [unit for unit in units if unit.unit_id not in done],
                 lambda unit, rows, points: store.write_unit(unit.unit_id, rows, points,
                                                             unit.config),
                 progress, client, plugins)
        for kind, make in _section_frame_makers(config, trajectories).items():
            stored = store.section_frames(kind)
            for section in sections:
                frame = None if not stored.empty and section.config_id in set(stored.config_id) \
                    else make(section)
                if frame is not None:
                    store.write_section_frame(kind, section.config_id, frame)
        results, samples = store.frames()
        paths, score_errors = store.section_frames("trajectories"), store.section_frames(
            "score_error")
        store.write_views({"results": results, "orders": order_table(results), "samples": samples,
                           "trajectories": paths, "score_error": score_errors})
        sections_on_disk = store.sections()
    ours = {unit.unit_id for unit in units}
    config_ids = {section.config_id for section in sections}
    results = results[results.unit_id.isin(ours)].reset_index(drop=True)
    samples = samples[samples.unit_id.isin(ours)].reset_index(drop=True) if not samples.empty else samples
    paths, score_errors = (frame[frame.config_id.isin(config_ids)].reset_index(drop=True)
                           if not frame.empty else frame for frame in (paths, score_errors))
    return StudyResult(results, analyse(results), samples, paths,
                       {key: value for key, value in sections_on_disk.items() if key in config_ids},
                       score_errors)


def _section_frame_makers(config: StudyConfig, trajectories: bool) -> dict:
    """kind → fn(section) returning the section's frame of that kind, or None if it has none:
    SDE-versus-ODE trajectories (if asked) and, for a learned score, its score error e(t)."""
    makers = {"score_error": lambda section: score_error_frame(section.problem, config.seed)
              if isinstance(section.problem, LearnedScoreProblem) else None}
    if trajectories:
        makers["trajectories"] = lambda section: trajectory_frame(section.schedule_spec,
                                                                  config.seed)
    return makers


def _run_in_memory(config, sections, units, progress, trajectories, client,
                   plugins) -> StudyResult:
    rows, points = [], []

    def collect(unit, unit_rows, unit_points):
        rows.extend(unit_rows)
        points.extend(unit_points)

    _execute(config, units, collect, progress, client, plugins)
    order = {unit.unit_id: i for i, unit in enumerate(units)}  # results arrive in any order
    rows.sort(key=lambda row: order[row["unit_id"]])
    points.sort(key=lambda point: (order[point["unit_id"]], point["point"]))
    results = pd.DataFrame(rows)
    frames = {}
    for kind, make in _section_frame_makers(config, trajectories).items():
        made = [(section.config_id, make(section)) for section in sections]
        made = [frame.assign(config_id=config_id) for config_id, frame in made
                if frame is not None]
        frames[kind] = pd.concat(made, ignore_index=True) if made else pd.DataFrame()
    return StudyResult(results, analyse(results), pd.DataFrame(points),
                       frames.get("trajectories", pd.DataFrame()),
                       {s.config_id: {"config": s.config, "commands": []} for s in sections},
                       frames["score_error"])
