"""Bad inputs to the result store: entries of units/ that are no unit file, hand-edited unit
files, a full disk or an unwritable path, a lock left by a dead process, views with no columns.
Each is named in one line (a warning or a StoreError) and never crashes a resume or loses a
stored unit."""

import errno
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest

from sdebench.solvers.ode import Euler
from sdebench.studies.config import StudyConfig, resolve_sections, resolve_units
from sdebench.studies.convergence import run_study
from sdebench.studies.provenance import unit_identifier
from sdebench.studies.store import ResultStore, StoreError, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
UNITS = 4  # vp × {euler, heun} × {8, 16}


class NoOrderEuler(Euler):
    """Euler declaring no order: its verdict is N/A."""

    order = None
    order_note = "declares none, for the test"


def _config(**kwargs):
    defaults = dict(schedules=["vp"], samplers=["euler", "heun"], steps=[8, 16], dim=2, batch=8)
    return StudyConfig(**{**defaults, **kwargs})


def _run(directory, **kwargs):
    return run_study(_config(**kwargs), ResultStore(directory), progress=False, trajectories=False)


def _rerun_recording_warnings(directory):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _run(directory)
    return result, [str(warning.message) for warning in caught]


@pytest.mark.parametrize("make", ["dangling_symlink", "folder"])
def test_an_entry_of_units_that_is_no_file_is_quarantined_not_a_crash(tmp_path, make):
    """A dangling symlink or a folder named *.json in units/ used to crash every resume with
    FileNotFoundError / IsADirectoryError."""
    _run(tmp_path)
    entry = tmp_path / "units" / "stray.json"
    if make == "folder":
        entry.mkdir()
    else:
        entry.symlink_to(tmp_path / "nowhere.json")
    result, messages = _rerun_recording_warnings(tmp_path)
    reason = "dangling symbolic link" if make != "folder" else "not a regular file"
    assert any(str(entry) in m and reason in m and "quarantine" in m for m in messages), messages
    assert os.path.lexists(tmp_path / "quarantine" / "stray.json") and not os.path.lexists(entry)
    assert result.results.unit_id.nunique() == UNITS


def _edit_first_unit(directory, edit):
    victim = sorted((directory / "units").glob("*.json"))[0]
    record = json.loads(victim.read_text())
    path = edit(record, victim)
    path.write_text(json.dumps(record))
    if path != victim:
        victim.unlink()
    return path


def _delete_a_row(record, victim):
    del record["rows"][0]
    return victim


def _change_unit_id(record, victim):
    """A consistent rename: file name, record and rows all say the new id."""
    record["unit_id"] = "0" * 16
    for row in record["rows"]:
        row["unit_id"] = record["unit_id"]
    return victim.with_name(f"{record['unit_id']}.json")


def _change_a_value(record, victim):
    record["rows"][0]["value"] *= 0.5
    return victim


@pytest.mark.parametrize(("edit", "reason"), [
    (_delete_a_row, "a row was deleted or added"),
    (_change_unit_id, "is not the identifier of its configuration"),
    (_change_a_value, "checksum does not match"),
])
def test_a_hand_edited_unit_file_is_quarantined_and_recomputed(tmp_path, edit, reason):
    """A unit file with a row deleted (7 of 8 rows kept), its unit_id changed (an orphan row
    set in results.csv) or a value changed used to be accepted as valid."""
    first = _run(tmp_path)
    edited = _edit_first_unit(tmp_path, edit)
    result, messages = _rerun_recording_warnings(tmp_path)
    assert any(edited.name in m and reason in m and "recomputed" in m for m in messages), messages
    assert (tmp_path / "quarantine" / edited.name).exists()
    views = pd.read_csv(tmp_path / "results.csv")
    assert len(views) == len(result.results) == len(first.results)  # no row lost, none extra
    assert set(views.unit_id) == set(first.results.unit_id)
    columns = ["unit_id", "metric", "value"]  # the recomputed unit equals the first run's
    pd.testing.assert_frame_equal(
        result.results[columns].sort_values(columns[:2]).reset_index(drop=True),
        first.results[columns].sort_values(columns[:2]).reset_index(drop=True))


def test_a_unit_identifier_is_that_of_its_configuration():
    """The store's check of a file's unit_id (provenance.unit_identifier) must agree with the
    identifiers the study resolves, for plain, pathwise and reference units alike."""
    config = _config(samplers=["euler", "euler_maruyama"])
    units = resolve_units(config, resolve_sections(config))
    assert any("brownian_path" in unit.config for unit in units)
    assert all(unit_identifier(unit.config) == unit.unit_id for unit in units)


def test_a_unit_without_its_configuration_is_refused_at_write_time(tmp_path):
    with ResultStore(tmp_path) as store, pytest.raises(ValueError, match="no configuration"):
        store.write_unit("u1", [{"config_id": "c", "unit_id": "u1", "sampler": "s", "steps": 4,
                                 "metric": "w2", "status": "ok", "value": 1.0}])


def _full_disk_for(part, real_mkstemp=tempfile.mkstemp):
    """tempfile.mkstemp whose files with ``part`` in their path write to /dev/full (ENOSPC on
    flush)."""

    def mkstemp(*args, **kwargs):
        handle, name = real_mkstemp(*args, **kwargs)
        if part in name:
            os.close(handle)
            handle = os.open("/dev/full", os.O_WRONLY)
        return handle, name

    return mkstemp


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_disk_while_writing_units_is_one_line_and_leaves_no_debris(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "mkstemp", _full_disk_for(f"{os.sep}units{os.sep}"))
    with pytest.raises(StoreError, match=r"cannot write .*units.*\.json: No space left on device "
                                         r"\(the disk is full") as caught:
        _run(tmp_path)
    assert "\n" not in str(caught.value)
    assert not list((tmp_path / "units").glob("*")) if (tmp_path / "units").exists() else True
    assert not list(tmp_path.rglob(".tmp-*"))


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_disk_while_writing_views_keeps_every_unit(tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(tempfile, "mkstemp", _full_disk_for(".csv"))
        with pytest.raises(StoreError, match=r"cannot write .*\.csv: No space left on device"):
            _run(tmp_path)
    assert len(list((tmp_path / "units").glob("*.json"))) == UNITS
    assert not list(tmp_path.rglob(".tmp-*"))
    calls = []
    monkeypatch.setattr("sdebench.studies.convergence.run_unit",
                        lambda *args: calls.append(args))  # nothing may be recomputed
    assert _run(tmp_path).results.unit_id.nunique() == UNITS and not calls


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_disk_while_writing_the_report_is_one_line(tmp_path, monkeypatch, capsys):
    """`sdebench report` (experiments/report.py) turns the StoreError into one usage line."""
    from sdebench.experiments.report import main

    _run(tmp_path)
    monkeypatch.setattr(tempfile, "mkstemp", _full_disk_for(".html"))
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "report.html: No space left on device" in err, err
    assert "Traceback" not in err and not (tmp_path / "report.html").exists()


def test_an_unwritable_path_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match=r"cannot write .*file.*report\.html") as caught:
        atomic_write_text(tmp_path / "file" / "report.html", "<html></html>")
    assert "\n" not in str(caught.value)


def test_enospc_names_its_cause_and_what_to_do(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(StoreError, match=r"x\.csv: No space left on device \(the disk is full: "
                                         r"free space or write elsewhere"):
        atomic_write_text(tmp_path / "x.csv", "a\n")
    assert list(tmp_path.iterdir()) == []


def test_a_busy_store_names_the_process_and_host(tmp_path):
    with ResultStore(tmp_path), pytest.raises(StoreError) as caught:
        ResultStore(tmp_path).__enter__()
    assert f"pid {os.getpid()} on {socket.gethostname()}" in str(caught.value)
    assert json.loads((tmp_path / ".lock").read_text()) == {"pid": os.getpid(),
                                                            "host": socket.gethostname()}


_ORPHAN = """
import os, sys, time
from sdebench.studies.store import ResultStore
with ResultStore(sys.argv[1]):
    child = os.fork()
    if child == 0:  # inherits the locked file: the lock outlives its writer
        for stream in (1, 2):  # but not the test's pipes
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream)
        time.sleep(60)
        os._exit(0)
    print(child, flush=True)
    os._exit(0)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork (POSIX)")
def test_a_lock_left_by_a_dead_process_is_called_stale_with_what_to_do(tmp_path):
    """A writer killed while a process it forked lives on leaves its lock held; the message
    used to say 'pid unknown' (or the dead pid) and 'wait for it to finish'."""
    writer = subprocess.run([sys.executable, "-c", _ORPHAN, str(tmp_path)], capture_output=True,
                            text=True, timeout=60, cwd=ROOT)
    orphan = int(writer.stdout.split()[0])
    try:
        with pytest.raises(StoreError) as caught:
            ResultStore(tmp_path).__enter__()
        message = str(caught.value)
        assert f"pid {json.loads((tmp_path / '.lock').read_text())['pid']} on " in message
        assert "no longer running" in message and "stale" in message and "fuser" in message
    finally:
        os.kill(orphan, 9)
    deadline = time.monotonic() + 30
    while True:  # the orphan's end frees the lock: the store is usable again
        try:
            ResultStore(tmp_path).__enter__().__exit__()
            break
        except StoreError:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_views_with_no_columns_are_not_written_as_a_blank_line(tmp_path):
    """Without trajectories, score errors or fitted orders (--metrics kl: no order), the
    views used to be files holding one blank line, which pandas cannot read. A view with no
    columns is not written; the order table keeps its header with no rows."""
    from sdebench.studies.order import TABLE_COLUMNS

    _run(tmp_path, metrics=["kl"])
    for name in ("trajectories", "score_error"):
        assert not (tmp_path / f"{name}.csv").exists(), name
    orders = pd.read_csv(tmp_path / "orders.csv")
    assert orders.empty and tuple(orders.columns) == TABLE_COLUMNS
    assert len(pd.read_csv(tmp_path / "results.csv")) == UNITS


def test_orders_csv_keeps_numbers_numeric_and_the_verdict_na(tmp_path):
    """The reading documented in the store (keep_default_na=False, na_values=[""]) gives back
    the order table exactly: numeric columns numeric, the verdict "N/A" a verdict."""
    from sdebench.studies.order import order_table

    result = _run(tmp_path, samplers=["euler", "tests.test_bad_input_store:NoOrderEuler"],
                  steps=[8, 16, 32, 64])
    read = pd.read_csv(tmp_path / "orders.csv", keep_default_na=False, na_values=[""])
    assert "N/A" in set(read.verdict) and set(read.verdict) == set(result.orders.verdict)
    for column in ("points", "measured_order", "ci95", "declared_order", "reference_margin"):
        assert pd.api.types.is_numeric_dtype(read[column]), column
    pd.testing.assert_series_equal(read.measured_order, order_table(result.results).measured_order)
