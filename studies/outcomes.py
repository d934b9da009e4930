"""The rows of a unit: the columns that carry its full configuration, and the rows that record a
unit that diverged or failed instead of measuring."""

from __future__ import annotations

import json
import math
import traceback

from sdebench.studies.config import Unit
from sdebench.studies.provenance import row_provenance


def _flat(config: dict) -> dict:
    """Nested values (parameter dicts) as JSON text, so every row is one flat record."""
    return {key: json.dumps(value, sort_keys=True, default=str) if isinstance(value, dict | list)
            else value for key, value in config.items()}


def unit_columns(unit: Unit) -> dict:
    """Every setting that made the unit's rows (its section's, the sampler's, the code's: the
    versions of torch, numpy, diffusers, k-diffusion and torchsde, and the git commit)."""
    solver = unit.solver
    return {
        **_flat(unit.section.config),
        "config_id": unit.section.config_id, "unit_id": unit.unit_id,
        "sampler": unit.sampler,
        "sampler_index": unit.config["sampler_index"],
        "sampler_params": json.dumps(unit.config["sampler_params"], sort_keys=True, default=str),
        "sampler_class": unit.config["sampler_class"],
        "sampler_source": unit.config["sampler_source"],  # its code: a change makes new units
        "library": getattr(solver, "library", "sdebench"),
        "steps": unit.steps,
        "stochastic": solver.stochastic,
        "declared_order": solver.order, "declared_strong_order": solver.strong_order,
        "order_note": getattr(solver, "order_note", ""),
        "order_source": getattr(solver, "order_source", ""),
        "twin": getattr(solver, "twin", ""), "convention": getattr(solver, "convention", ""),
        "steps_on": getattr(solver, "steps_on", ""),  # a peer with its own grid says so
        # what the errors are measured on: rows on another Brownian path or against another
        # reference solve are another measurement, never fitted together (order_table)
        "brownian_path": unit.config.get("brownian_path", ""),
        "reference_solve": unit.reference or "",
        **row_provenance(),  # library versions and git commit: recorded, not compared
    }


def outcome_row(base: dict, metric, status: str, error: str, value: float) -> dict:
    """The row of one metric that did not measure (``diverged``: value ∞; ``failed``)."""
    base = {"nfe": math.nan, "step_size": math.nan, "wall_time": math.nan,
            "wall_time_min": math.nan, "wall_time_max": math.nan, **base}
    return {**base, "metric": metric.name, "metric_order": metric.order or "", "status": status,
            "error": error, "value": value, "stderr": math.nan, "floor": math.nan,
            "floor_kind": "", "reference": math.nan, "against": ""}


def outcome_rows(base: dict, unit: Unit, status: str, error: str, value: float) -> list[dict]:
    """One row per metric of a unit that did not measure (:func:`outcome_row`)."""
    return [outcome_row(base, metric, status, error, value) for metric in unit.metrics]


def error_detail(error: BaseException) -> str:
    """An error as a row records it: its type and message."""
    return "".join(traceback.format_exception_only(error)).strip()


def failed_rows(unit: Unit, error: BaseException, base: dict | None = None) -> list[dict]:
    """The rows of a unit that raised ``error`` (its message kept; the unit runs again on
    resume)."""
    return outcome_rows(unit_columns(unit) if base is None else base, unit, "failed",
                        error_detail(error), math.nan)
