"""The result store never loses, duplicates or silently reuses a row."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest

from sdebench.studies.config import StudyConfig
from sdebench.studies.convergence import run_study
from sdebench.studies.store import ResultStore, StoreError

ROOT = Path(__file__).resolve().parents[1]


def _config(**kwargs):
    defaults = dict(schedules=["vp"], samplers=["euler", "heun"], steps=[8, 16], dim=2, batch=8)
    return StudyConfig(**{**defaults, **kwargs})


def _run(directory, **kwargs):
    return run_study(_config(**kwargs), ResultStore(directory), progress=False, trajectories=False)


def test_one_file_per_unit_and_views_of_everything(tmp_path):
    result = _run(tmp_path)
    assert len(list((tmp_path / "units").glob("*.json"))) == 4
    assert len(pd.read_csv(tmp_path / "results.csv")) == len(result.results)
    orders = pd.read_csv(tmp_path / "orders.csv")
    assert set(orders.sampler) == {"euler", "heun"}
    assert not list(tmp_path.rglob(".tmp-*"))


def test_a_second_writer_is_refused_with_a_message(tmp_path):
    with ResultStore(tmp_path), pytest.raises(StoreError, match="being written by another"):
        ResultStore(tmp_path).__enter__()


def test_two_processes_on_one_output_lose_nothing(tmp_path):
    """Two CLI runs started together on one --out used to keep 125 of 225 rows, both exiting 0.
    Now the second is refused (exit 2, a message) or, if the first has finished, resumes; either
    way every unit is stored once."""
    command = [sys.executable, str(ROOT / "experiments" / "convergence.py"), "--samplers",
               "euler,heun,ddim", "--steps", "8,16,32,64", "--quiet", "--no-report", "--out",
               str(tmp_path / "out")]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outcomes = []
    for run in runs:
        _, err = run.communicate(timeout=300)
        outcomes.append((run.returncode, err))
    codes = sorted(code for code, _ in outcomes)
    assert codes in ([0, 0], [0, 2]), outcomes
    if codes == [0, 2]:
        assert any("being written by another" in err for code, err in outcomes if code == 2)
    results, _ = ResultStore(tmp_path / "out").frames()
    assert results.unit_id.nunique() == 12
    assert len(results) == len(results.drop_duplicates(["unit_id", "metric"]))


def test_a_damaged_unit_file_is_quarantined_and_recomputed(tmp_path):
    """One garbage line in results.csv used to make every later run recompute everything and
    crash with KeyError."""
    _run(tmp_path)
    victim = sorted((tmp_path / "units").glob("*.json"))[0]
    victim.write_text('{"format": 1, "unit_id": "trunc')
    with pytest.warns(UserWarning, match="not valid JSON.*quarantine"):
        result = _run(tmp_path)
    assert (tmp_path / "quarantine" / victim.name).exists()
    assert victim.exists() and result.results.unit_id.nunique() == 4


def test_a_row_missing_its_value_is_not_kept_as_nan(tmp_path):
    """A row truncated in its value columns used to stay NaN and never be recomputed."""
    _run(tmp_path)
    victim = sorted((tmp_path / "units").glob("*.json"))[0]
    record = json.loads(victim.read_text())
    del record["rows"][0]["value"]
    victim.write_text(json.dumps(record))
    with pytest.warns(UserWarning, match="status ok but value None"):
        result = _run(tmp_path)
    assert result.results.value.notna().all()


def test_reading_without_the_lock_never_moves_files(tmp_path):
    _run(tmp_path)
    victim = sorted((tmp_path / "units").glob("*.json"))[0]
    victim.write_text("garbage")
    with pytest.warns(UserWarning, match="ignored"):
        results, _ = ResultStore(tmp_path).frames()
    assert victim.exists() and results.unit_id.nunique() == 3


def test_stale_temporary_files_are_removed(tmp_path):
    _run(tmp_path)
    stale = tmp_path / "units" / ".tmp-killed.json"
    stale.write_text("half a unit")
    _run(tmp_path)
    assert not stale.exists()


def test_an_empty_scatter_set_does_not_break_resume_or_reports(tmp_path):
    """A diverged 2-D GMM run used to write samples.csv as a bare newline; every later resume and
    report then crashed with EmptyDataError."""
    from sdebench.experiments.report import render_directory

    config = dict(problem="gmm", samplers=["tests.test_studies:NaNSolver"], steps=[4], batch=16)
    first = _run(tmp_path, **config)
    assert first.results.status.eq("diverged").all() and first.samples.empty
    assert _run(tmp_path, **config).results.status.eq("diverged").all()
    assert render_directory(tmp_path).exists()


@pytest.mark.parametrize("bad", ["", "   "])
def test_an_empty_output_path_is_refused(bad):
    with pytest.raises(StoreError, match="empty"):
        ResultStore(bad)


def test_a_file_is_not_a_store(tmp_path):
    (tmp_path / "results.csv").write_text("x\n")
    with pytest.raises(StoreError, match="is a file"):
        ResultStore(tmp_path / "results.csv")


def test_an_unwritable_store_fails_before_any_unit_runs(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot write"):
        ResultStore(tmp_path / "file" / "study").__enter__()


def test_invalid_records_are_refused_at_write_time(tmp_path):
    with ResultStore(tmp_path) as store, pytest.raises(ValueError, match="status ok but value nan"):
        store.write_unit("u1", [{"config_id": "c", "unit_id": "u1", "sampler": "s", "steps": 4,
                                 "metric": "w2", "status": "ok", "value": float("nan")}])


def test_writing_needs_the_lock(tmp_path):
    with pytest.raises(StoreError, match="inside 'with store:'"):
        ResultStore(tmp_path).write_unit("u1", [])


def test_quarantine_warnings_name_the_file(tmp_path):
    _run(tmp_path)
    victim = sorted((tmp_path / "units").glob("*.json"))[0]
    victim.write_text("[]")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _run(tmp_path)
    assert any(victim.name in str(w.message) and "not a JSON object" in str(w.message)
               for w in caught)
