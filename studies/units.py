"""Running one unit of a study: its measurements, timed batch run and sample points, and the
warm-up that keeps first-call costs out of its timings. Pure functions of the configuration and
the unit, run in the study's process or on a dask worker alike."""

from __future__ import annotations

import math

from sdebench.problems.protocol import SAMPLES
from sdebench.seeding import generator
from sdebench.solvers.context import NonFiniteError
from sdebench.solvers.grids import make_grid
from sdebench.solvers.loop import sample
from sdebench.solvers.noise import GaussianIncrements
from sdebench.studies.config import StudyConfig, Unit
from sdebench.studies.metrics import UnitRun
from sdebench.studies.outcomes import error_detail, failed_rows, outcome_row, outcome_rows, unit_columns

SCATTER_POINTS = 400
FITTED_ORDERS = ("order", "strong_order")
"""``metric_order`` of the rows whose errors are fitted (:mod:`sdebench.studies.order`)."""

_SOLVER_FLOOR_UNSET = object()


def solver_error_floor(solver, problem, ts) -> tuple[float, str] | None:
    """The (floor, kind) a solver declares for its errors on ``problem`` over the grid ``ts``
    (``error_floor``, e.g. diffusers' Euler/Heun on a σ table:
    :meth:`sdebench.peers.diffusers.DiffusersSampler.error_floor`), or None where it declares
    none."""
    error_floor = getattr(solver, "error_floor", None)
    return None if error_floor is None else error_floor(problem, ts)


def run_unit(config: StudyConfig, unit: Unit) -> tuple[list[dict], list[dict]]:
    """All measurements of one unit, and up to 400 output points of a 2-D problem. A run whose
    model output or state turns non-finite is recorded as ``diverged`` (value ∞), one that
    raises as ``failed`` with its error (a metric that raises: that metric's row only, the
    unit's other metrics are kept); neither stops the study. A fitted row's floor is
    raised to the one its solver declares (:func:`solver_error_floor`) where that is larger,
    with the solver's ``floor_kind``: errors at it are not discretisation error."""
    run = UnitRun(unit.section.problem, unit.solver, unit.steps, grid=config.grid,
                  batch=config.batch, seed=config.seed,
                  strong_reference_factor=config.strong_reference_factor,
                  path_times=unit.path_times, timing_repeats=config.timing_repeats,
                  reference=unit.reference)
    base = unit_columns(unit)
    try:
        batch = run.batch_run
        base.update(nfe=batch.nfe, step_size=float((run.ts[:-1] - run.ts[1:]).abs().max()),
                    wall_time=batch.wall_time, wall_time_min=min(batch.timings),
                    wall_time_max=max(batch.timings))
        rows = []
        solver_floor = _SOLVER_FLOOR_UNSET
        for metric in unit.metrics:
            try:
                measurement = dict(vars(metric(run)))  # a copy: a Measurement is frozen
            except NonFiniteError:
                raise
            except Exception as error:  # this metric only: the unit's others still measure
                rows.append(outcome_row(base, metric, "failed", error_detail(error), math.nan))
                continue
            if metric.order in FITTED_ORDERS:
                if solver_floor is _SOLVER_FLOOR_UNSET:
                    solver_floor = solver_error_floor(unit.solver, unit.section.problem, run.ts)
                if solver_floor is not None and not measurement["floor"] >= solver_floor[0]:
                    measurement.update(floor=solver_floor[0], floor_kind=solver_floor[1])
            rows.append({**base, "metric": metric.name, "metric_order": metric.order or "",
                         "status": "ok", "error": "", **measurement})
    except NonFiniteError as error:
        return outcome_rows(base, unit, "diverged", str(error), math.inf), []
    except Exception as error:  # a user plugin's bug must not lose the rest of the study
        return failed_rows(unit, error, base), []
    points = []
    problem = unit.section.problem
    if problem.dim == 2 and SAMPLES in problem.capabilities:
        xy = batch.x[:SCATTER_POINTS].detach().cpu().double().tolist()
        points = [{"config_id": unit.section.config_id, "unit_id": unit.unit_id,
                   "schedule": unit.section.schedule_spec, "sampler": unit.sampler,
                   "steps": unit.steps, "point": i, "x": x, "y": y} for i, (x, y) in enumerate(xy)]
    return rows, points


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
