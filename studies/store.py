"""Results on disk that are never lost, duplicated or silently reused.

Layout of a study directory::

    .lock                  held (fcntl) by the one process writing, which records its pid and
                           host there; a second writer is refused, told which process holds it
                           (or that the process is dead and its lock stale)
    units/<unit_id>.json   one file per finished unit: its configuration, rows, sample points and
                           a checksum of them, written to a temporary file and renamed (atomic),
                           so a killed run leaves whole units only; the id hashes the unit's
                           full configuration
    sections.json          each section's configuration and the commands that ran it
    trajectories/<config_id>.json   the SDE-versus-PF-ODE paths of a section
    results.csv, orders.csv, samples.csv, trajectories.csv
                           views compacted from the above for people and other tools
                           (rewritten atomically at the end of a study; never read back; a
                           view with no columns, e.g. no fitted order, is not written). Read them
                           with ``pd.read_csv(path, keep_default_na=False, na_values=[""])``:
                           pandas' default reading turns the verdict "N/A" into NaN
    quarantine/            unit files that failed validation, moved aside with a warning

Writing a unit costs one small file (not a rewrite of everything); resuming skips units whose
file is valid; a damaged or hand-edited file (invalid JSON, a row deleted, a value or unit_id
changed: its checksum, its identifier or its rows no longer match its configuration), or an
entry that is no file (a folder, a dangling link), is quarantined, named in a warning, and its
unit recomputed. A write that fails (a full disk, no permission) raises :class:`StoreError`
naming the file; every unit stored before it is kept.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import socket
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

from sdebench.studies.provenance import digest, unit_identifier

FORMAT = 2
"""2: a unit file holds its configuration and a checksum (format 1 files are recomputed)."""
STATUSES = ("ok", "diverged", "failed")
REQUIRED_ROW_FIELDS = {"config_id": str, "unit_id": str, "sampler": str, "steps": int,
                       "metric": str, "status": str}

try:
    import fcntl
except ImportError:  # not POSIX: no advisory locks
    fcntl = None


class StoreError(RuntimeError):
    """A study directory that cannot be used (busy, unwritable, not a directory)."""


def _failure(action: str, path: Path, error: OSError) -> StoreError:
    """One line for an OS error on ``path``, with what to do about the usual causes."""
    advice = {errno.ENOSPC: "the disk is full: free space or write elsewhere",
              errno.EDQUOT: "the disk quota is exceeded: free space or write elsewhere",
              errno.EACCES: "no permission: write elsewhere",
              errno.EROFS: "a read-only file system: write elsewhere"}.get(
        error.errno, "check the path and the disk")
    return StoreError(f"cannot {action} {path}: {error.strerror or error} ({advice}); everything "
                      "stored before is kept")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename;
    an OS error (a full disk, no permission) is a :class:`StoreError` naming ``path``, and
    leaves ``path`` as it was."""
    path = Path(path)
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException as error:
        if temporary is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        if isinstance(error, OSError):
            raise _failure("write", path, error) from None
        raise


def _json_text(data) -> str:
    return json.dumps(data, allow_nan=True, default=str)


def record_checksum(record: dict) -> str:
    """SHA-256 of a unit record's content (all but the checksum itself, keys sorted)."""
    return digest({key: value for key, value in record.items() if key != "checksum"}, 64)


def validate_unit_record(record, unit_id: str) -> str | None:
    """Why a unit file's content is not a valid record of ``unit_id`` (None if it is): its
    format, its rows' fields, its identifier against its configuration
    (:func:`~sdebench.studies.provenance.unit_identifier`), one row per configured metric, and
    its checksum (any other hand edit)."""
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
        if row["unit_id"] != unit_id:
            return f"row {i} has unit_id {row['unit_id']!r}, the file {unit_id!r}"
    config = record.get("config")
    if not isinstance(config, dict):
        return "no configuration (config must be the unit's configuration, a JSON object)"
    if unit_identifier(config) != unit_id:
        return (f"unit_id {unit_id!r} is not the identifier of its configuration "
                f"({unit_identifier(config)!r}): edited by hand?")
    metrics = sorted(row["metric"] for row in rows)
    if metrics != sorted(config.get("metrics", [])):
        return (f"rows for metrics {metrics}, its configuration has one row per metric of "
                f"{sorted(config.get('metrics', []))}: a row was deleted or added?")
    if any(row["config_id"] != config.get("config_id") for row in rows):
        return f"a row's config_id is not its configuration's {config.get('config_id')!r}"
    if record.get("checksum") != record_checksum(record):
        return "its checksum does not match its content: edited by hand?"
    return None


def _process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        pass
    return True


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
                message = self._busy_message(lock)
                lock.close()
                raise StoreError(message) from None
        try:
            lock.seek(0)
            lock.truncate()
            lock.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
            lock.flush()
        except OSError as error:
            lock.close()
            raise _failure("write", self.directory / ".lock", error) from None
        self._lock = lock
        self._remove_stale_temporaries()
        return self

    def _busy_message(self, lock) -> str:
        """Who holds the lock: the process it records (pid and host), or, when that process is
        dead on this host, that the lock is stale and how to free it."""
        path = self.directory / ".lock"
        owner = None
        for _ in range(2):  # the holder writes its record just after taking the lock
            lock.seek(0)
            with contextlib.suppress(ValueError):
                owner = json.loads(lock.read())
            if isinstance(owner, dict) and isinstance(owner.get("pid"), int):
                break
            owner = None
            time.sleep(0.2)
        if owner is None:
            return (f"{self.directory} is being written by another sdebench process (it has not "
                    f"recorded itself in {path}); wait for it to finish, or use another --out")
        pid, host = owner["pid"], owner.get("host", "")
        if host == socket.gethostname() and not _process_alive(pid):
            return (f"{self.directory} is locked by pid {pid} on {host}, which is no longer "
                    f"running: the lock is stale, held by a process it left behind (`fuser -v "
                    f"{path}` names it); end that process and run again, or use another --out")
        return (f"{self.directory} is being written by another sdebench process (pid {pid} on "
                f"{host or 'an unknown host'}); wait for it to finish, or use another --out")

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

    def write_unit(self, unit_id: str, rows: list[dict], points: list[dict] = (),
                   config: dict | None = None) -> None:
        """Store a finished unit: its rows, sample points and ``config`` (the unit's
        configuration, ``Unit.config``, which its ``unit_id`` must identify), with a checksum."""
        self._require_lock()
        record = json.loads(_json_text({"format": FORMAT, "unit_id": unit_id, "config": config,
                                        "rows": rows, "points": list(points)}))
        record["checksum"] = record_checksum(record)
        problem = validate_unit_record(record, unit_id)
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
        """results.csv, orders.csv, … : compacted, human-readable copies (atomic). A frame with
        no columns has no CSV form (pandas would write one blank line, which no reader takes):
        its view is not written, and an older one removed."""
        self._require_lock()
        for name, frame in frames.items():
            path = self.directory / f"{name}.csv"
            if len(frame.columns):
                atomic_write_text(path, frame.to_csv(index=False))
                continue
            try:
                path.unlink(missing_ok=True)
            except OSError as error:
                raise _failure("remove", path, error) from None

    # -- reading -------------------------------------------------------------------------------
    def sections(self) -> dict:
        path = self.directory / "sections.json"
        if not path.exists():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as error:
            raise StoreError(f"{path} is damaged ({error}); remove it and re-run the study") from None

    @staticmethod
    def _stored_entries(directory: Path) -> list[Path]:
        """The ``*.json`` entries of ``directory``, without the writers' temporary files."""
        return sorted(path for path in directory.glob("*.json")
                      if not path.name.startswith(".tmp-")) if directory.is_dir() else []

    @staticmethod
    def _not_a_file(path: Path) -> str | None:
        """Why ``path`` is no readable file (None if it is one)."""
        if path.is_symlink() and not path.exists():
            return f"a dangling symbolic link (to {os.readlink(path)})"
        if not path.is_file():
            return "not a regular file (a directory?)"
        return None

    def _read_unit(self, path: Path) -> dict | None:
        problem = self._not_a_file(path)
        if problem is None:
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                problem = f"not valid JSON ({error})"
            except OSError as error:
                problem = f"cannot be read ({error.strerror or error})"
            else:
                problem = validate_unit_record(record, path.stem)
        if problem is None:
            return record
        self._quarantine(path, problem, "the unit")
        return None

    def _quarantine(self, path: Path, problem: str, what: str) -> None:
        """Move ``path`` to quarantine/ (under a free name) with a warning that names it; without
        the lock, only warn."""
        message = f"{path}: {problem}"
        if self._lock is not None:
            target = self.directory / "quarantine" / path.name
            for n in range(1, 10**6):  # keep every file quarantined before
                if not os.path.lexists(target):
                    break
                target = target.with_name(f"{path.stem}.{n}{path.suffix}")
            try:
                target.parent.mkdir(exist_ok=True)
                os.replace(path, target)
            except OSError as error:
                raise _failure(f"quarantine ({problem})", path, error) from None
            message += f"; moved to {target}, {what} will be recomputed"
        else:
            message += f"; ignored (re-run the study to recompute {what})"
        warnings.warn(message, stacklevel=4)

    def records(self) -> dict[str, dict]:
        """unit_id → record of every valid unit file (invalid ones are quarantined)."""
        records = {}
        for path in self._stored_entries(self.units_dir):
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
        frames = []
        for path in self._stored_entries(self.directory / kind):
            problem = self._not_a_file(path)
            if problem is None:
                try:
                    frames.append(pd.read_json(path, orient="records").assign(config_id=path.stem))
                    continue
                except (ValueError, OSError) as error:
                    problem = f"not a readable frame ({error})"
            self._quarantine(path, problem, f"the section's {kind}")
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(results, samples) of every stored unit."""
        rows, points = [], []
        for record in self.records().values():
            # rows written before they carried sampler_source take it from their unit's config
            source = (record.get("config") or {}).get("sampler_source", "")
            rows.extend({"sampler_source": source, **row} for row in record["rows"])
            points.extend(record["points"])
        results = pd.DataFrame(rows)
        if not results.empty:  # sections in the order they were first run, samplers as listed
            section_order = {config_id: i for i, config_id in enumerate(self.sections())}
            results = results.assign(_section=results.config_id.map(section_order)).sort_values(
                ["_section", "sampler_index", "sampler", "steps"], kind="stable").drop(
                columns="_section").reset_index(drop=True)
        return results, pd.DataFrame(points)
