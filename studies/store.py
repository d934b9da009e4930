"""Results on disk that are never lost, duplicated or silently reused.

Layout of a study directory::

    .lock                  held (fcntl) by the one process writing; a second writer is refused
    units/<unit_id>.json   one file per finished unit: its configuration, rows and sample points,
                           written to a temporary file and renamed (atomic), so a killed run
                           leaves whole units only; the id hashes the unit's full configuration
    sections.json          each section's configuration and the commands that ran it
    trajectories/<config_id>.json   the SDE-versus-PF-ODE paths of a section
    results.csv, orders.csv, samples.csv, trajectories.csv
                           views compacted from the above for people and other tools
                           (rewritten atomically at the end of a study; never read back)
    quarantine/            unit files that failed validation, moved aside with a warning

Writing a unit costs one small file (not a rewrite of everything); resuming skips units whose
file is valid; a damaged file is quarantined, named in a warning, and its unit recomputed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import warnings
from pathlib import Path

import pandas as pd

FORMAT = 1
STATUSES = ("ok", "diverged", "failed")
REQUIRED_ROW_FIELDS = {"config_id": str, "unit_id": str, "sampler": str, "steps": int,
                       "metric": str, "status": str}

try:
    import fcntl
except ImportError:  # not POSIX: no advisory locks
    fcntl = None


class StoreError(RuntimeError):
    """A study directory that cannot be used (busy, unwritable, not a directory)."""


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _json_text(data) -> str:
    return json.dumps(data, allow_nan=True, default=str)


def validate_unit_record(record, unit_id: str) -> str | None:
    """Why a unit file's content is not a valid record of ``unit_id`` (None if it is)."""
    if not isinstance(record, dict):
        return "not a JSON object"
    if record.get("format") != FORMAT:
        return f"format {record.get('format')!r}, expected {FORMAT}"
    if record.get("unit_id") != unit_id:
        return f"unit_id {record.get('unit_id')!r} does not match the file name"
    rows, points = record.get("rows"), record.get("points", [])
    if not isinstance(rows, list) or not rows or not isinstance(points, list):
        return "rows must be a non-empty list and points a list"
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            return f"row {i} is not an object"
        for name, kind in REQUIRED_ROW_FIELDS.items():
            if not isinstance(row.get(name), kind) or isinstance(row.get(name), bool):
                return f"row {i}: {name} must be {kind.__name__}, got {row.get(name)!r}"
        if row["status"] not in STATUSES:
            return f"row {i}: unknown status {row['status']!r}"
        value = row.get("value")
        if row["status"] == "ok" and (not isinstance(value, int | float) or math.isnan(value)):
            return f"row {i} ({row['metric']}): status ok but value {value!r}"
    return None


class ResultStore:
    """A study directory. Use as a context manager to write (takes the lock); reading needs no
    lock, since every file is replaced atomically."""

    def __init__(self, directory: str | os.PathLike):
        if str(directory).strip() == "":
            raise StoreError("the output directory is empty: give a path")
        self.directory = Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise StoreError(f"{self.directory} is a file, not a directory: the study writes "
                             "results.csv, report.html and more inside a directory")
        self.units_dir = self.directory / "units"
        self._lock = None

    # -- writing -------------------------------------------------------------------------------
    def __enter__(self) -> ResultStore:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            lock = open(self.directory / ".lock", "a+")  # noqa: SIM115 - held until __exit__
        except OSError as error:
            raise StoreError(f"cannot write to {self.directory}: {error}") from None
        if fcntl is not None:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                owner = lock.read().strip() or "unknown"
                lock.close()
                raise StoreError(
                    f"{self.directory} is being written by another sdebench process (pid "
                    f"{owner}); wait for it to finish, or use another --out"
                ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        self._lock = lock
        self._remove_stale_temporaries()
        return self

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _require_lock(self) -> None:
        if self._lock is None:
            raise StoreError("write to a ResultStore inside 'with store:' (it takes the lock)")

    def _remove_stale_temporaries(self) -> None:
        """Temporary files left by a killed writer (we hold the lock, so none is in use)."""
        for directory in (self.directory, self.units_dir, self.directory / "trajectories"):
            for path in directory.glob(".tmp-*") if directory.is_dir() else ():
                path.unlink(missing_ok=True)

    def write_unit(self, unit_id: str, rows: list[dict], points: list[dict] = ()) -> None:
        self._require_lock()
        record = {"format": FORMAT, "unit_id": unit_id, "rows": rows, "points": list(points)}
        problem = validate_unit_record(json.loads(_json_text(record)), unit_id)
        if problem:
            raise ValueError(f"refusing to store an invalid record for unit {unit_id}: {problem}")
        atomic_write_text(self.units_dir / f"{unit_id}.json", _json_text(record))

    def record_section(self, config_id: str, config: dict, command: str) -> None:
        """Add a section's configuration and the command that ran it to sections.json."""
        self._require_lock()
        sections = self.sections()
        entry = sections.setdefault(config_id, {"config": config, "commands": []})
        if command and command not in entry["commands"]:
            entry["commands"].append(command)
        atomic_write_text(self.directory / "sections.json", _json_text(sections))

    def write_section_frame(self, kind: str, config_id: str, frame: pd.DataFrame) -> None:
        """A frame that belongs to a whole section (``trajectories``, ``score_error``)."""
        self._require_lock()
        atomic_write_text(self.directory / kind / f"{config_id}.json",
                          frame.to_json(orient="records"))

    def write_views(self, frames: dict[str, pd.DataFrame]) -> None:
        """results.csv, orders.csv, … : compacted, human-readable copies (atomic)."""
        self._require_lock()
        for name, frame in frames.items():
            atomic_write_text(self.directory / f"{name}.csv", frame.to_csv(index=False))

    # -- reading -------------------------------------------------------------------------------
    def sections(self) -> dict:
        path = self.directory / "sections.json"
        if not path.exists():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise StoreError(f"{path} is damaged ({error}); remove it and re-run the study") from None

    def _read_unit(self, path: Path) -> dict | None:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            problem = f"not valid JSON ({error})"
        else:
            problem = validate_unit_record(record, path.stem)
        if problem is None:
            return record
        self._quarantine(path, problem)
        return None

    def _quarantine(self, path: Path, problem: str) -> None:
        message = f"{path}: {problem}"
        if self._lock is not None:
            target = self.directory / "quarantine" / path.name
            target.parent.mkdir(exist_ok=True)
            os.replace(path, target)
            message += f"; moved to {target}, the unit will be recomputed"
        else:
            message += "; ignored (re-run the study to recompute it)"
        warnings.warn(message, stacklevel=3)

    def records(self) -> dict[str, dict]:
        """unit_id → record of every valid unit file (invalid ones are quarantined)."""
        if not self.units_dir.is_dir():
            return {}
        records = {}
        for path in sorted(self.units_dir.glob("*.json")):
            record = self._read_unit(path)
            if record is not None:
                records[path.stem] = record
        return records

    def completed(self) -> set[str]:
        """Units whose record is valid and not a failure (failed units are run again)."""
        return {unit_id for unit_id, record in self.records().items()
                if all(row["status"] != "failed" for row in record["rows"])}

    def section_frames(self, kind: str) -> pd.DataFrame:
        """Every section's frame of ``kind``, with its ``config_id``."""
        directory = self.directory / kind
        frames = [pd.read_json(path, orient="records").assign(config_id=path.stem)
                  for path in sorted(directory.glob("*.json"))] if directory.is_dir() else []
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(results, samples) of every stored unit."""
        rows, points = [], []
        for record in self.records().values():
            rows.extend(record["rows"])
            points.extend(record["points"])
        results = pd.DataFrame(rows)
        if not results.empty:  # sections in the order they were first run, samplers as listed
            section_order = {config_id: i for i, config_id in enumerate(self.sections())}
            results = results.assign(_section=results.config_id.map(section_order)).sort_values(
                ["_section", "sampler_index", "sampler", "steps"], kind="stable").drop(
                columns="_section").reset_index(drop=True)
        return results, pd.DataFrame(points)
