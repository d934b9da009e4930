"""Studies on dask.distributed: the same store as a serial run, bit for bit; no unit lost or
doubled when a worker dies mid-unit; failures recorded; Ctrl-C leaves a valid store."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import distributed
import pandas as pd
import pytest

from sdebench.solvers.ode import Euler
from sdebench.studies.config import StudyConfig
from sdebench.studies.convergence import run_study
from sdebench.studies.distributed import local_cluster
from sdebench.studies.store import ResultStore

ROOT = Path(__file__).resolve().parents[1]
TIMINGS = ["wall_time", "wall_time_min", "wall_time_max"]


class SlowEuler(Euler):
    """Euler that takes 0.03 s a step: units long enough to be interrupted (the largest, 48 steps,
    runs ≥ 1.4 s; the test interrupts within 0.05 s of the first stored unit)."""

    def step(self, ctx, x, t_cur, t_next, state):
        time.sleep(0.03)
        return super().step(ctx, x, t_cur, t_next, state)


@pytest.fixture(scope="module")
def client():
    with local_cluster(2) as cluster, distributed.Client(cluster) as client:
        yield client


def _frame(directory):
    results, _ = ResultStore(directory).frames()
    return results.sort_values(["unit_id", "metric"]).reset_index(drop=True)


def test_distributed_store_equals_the_serial_store(tmp_path, client):
    """Two processes, results arriving out of order: the same rows as a serial run, bit for bit
    on the CPU (timings aside), and the same views."""
    config = StudyConfig(schedules=["vp", "ve"], samplers=["heun", "euler_maruyama", "ddim"],
                         steps=[4, 8, 16], dim=2, batch=32)
    run_study(config, ResultStore(tmp_path / "serial"), progress=False, trajectories=False)
    run_study(config, ResultStore(tmp_path / "dask"), progress=False, trajectories=False,
              client=client)
    serial, parallel = _frame(tmp_path / "serial"), _frame(tmp_path / "dask")
    assert len(serial) == len(parallel) == 2 * (3 * 3 * 2 + 3)  # w2, kl each; EM strong error
    pd.testing.assert_frame_equal(serial.drop(columns=TIMINGS), parallel.drop(columns=TIMINGS))
    orders = [pd.read_csv(tmp_path / name / "orders.csv") for name in ("serial", "dask")]
    pd.testing.assert_frame_equal(*orders)


def test_a_worker_killed_mid_unit_loses_and_doubles_nothing(tmp_path, client):
    config = StudyConfig(schedules=["vp"], samplers=["tests.test_distributed:SlowEuler"],
                         steps=[4, 8, 12, 16, 20, 24], dim=2, batch=8, metrics=["w2"])
    done = {}

    def study():
        done["result"] = run_study(config, ResultStore(tmp_path), progress=False,
                                   trajectories=False, client=client)

    thread = threading.Thread(target=study)
    thread.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline:
        busy = [worker for worker, keys in client.processing().items() if keys]
        if busy and (tmp_path / "units").is_dir() and any((tmp_path / "units").glob("*.json")):
            killed = busy[0]
            try:  # the worker dies while running a unit; its nanny starts a new one
                client.run(os._exit, 1, workers=[killed])
            except Exception:  # noqa: BLE001 - the call cannot return from a dead worker
                pass
        time.sleep(0.05)
    thread.join(timeout=300)
    assert killed is not None and not thread.is_alive()
    results = _frame(tmp_path)
    assert sorted(results.steps) == [4, 8, 12, 16, 20, 24]  # every unit once
    assert results.status.eq("ok").all()
    assert len(done["result"].results) == 6


def test_a_unit_that_raises_is_a_failed_row_and_the_study_goes_on(tmp_path, client):
    config = StudyConfig(schedules=["vp"], samplers=["tests.test_studies:BrokenSolver", "euler"],
                         steps=[4, 8], dim=2, batch=8)
    result = run_study(config, ResultStore(tmp_path), progress=False, trajectories=False,
                       client=client)
    broken = result.results[result.results.sampler.str.endswith("BrokenSolver")]
    assert broken.status.eq("failed").all() and "this sampler has a bug" in broken.error.iloc[0]
    assert result.results[result.results.sampler == "euler"].status.eq("ok").all()


def test_ctrl_c_leaves_a_valid_store_that_resumes(tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / "experiments" / "convergence.py"), "--samplers",
               "tests.test_distributed:SlowEuler", "--steps", "8,16,24,32,40,48", "--metrics",
               "w2", "--workers", "2", "--quiet", "--no-report", "--out", str(out)]
    # as from a shell: SIGINT at its default in the child (a test runner's worker may ignore it,
    # and an ignored SIGINT is inherited, so Python would install no KeyboardInterrupt handler)
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (out / "units").is_dir() or not any((out / "units").glob("*.json")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "run the same command again to resume" in err, err
    stored = list((out / "units").glob("*.json"))
    assert 1 <= len(stored) < 6
    for path in stored:  # whole, valid units only
        assert json.loads(path.read_text())["rows"][0]["status"] == "ok"
    resumed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert len(list((out / "units").glob("*.json"))) == 6


PLUGIN = str(ROOT / "examples" / "my_plugin.py")


@pytest.fixture
def plugin_names():
    """Leaves the catalogues as they were: the plugin imported in this process would otherwise
    stay registered ('ralston', 'second_moment_error') for every later test on the same xdist
    worker, which then sees one sampler and one metric more than it expects."""
    from sdebench.problems.catalogue import PROBLEMS
    from sdebench.solvers.catalogue import SAMPLERS
    from sdebench.solvers.grids import GRIDS
    from sdebench.studies.metrics import METRICS
    from sdebench.theory.catalogue import SCHEDULES

    registries = (PROBLEMS, SAMPLERS, GRIDS, METRICS, SCHEDULES)
    saved = [dict(registry._factories) for registry in registries]
    yield
    for registry, factories in zip(registries, saved, strict=True):
        registry._factories.clear()
        registry._factories.update(factories)
    sys.modules.pop(Path(PLUGIN).stem, None)


def test_a_plugin_file_runs_on_workers_that_run_many_units(tmp_path, client, plugin_names):
    """The README's `--workers 2 --plugin examples/my_plugin.py` failed every unit after a
    worker's first: each task re-imported the file, and registering 'ralston' again was
    refused. 6 units on 2 workers: some worker runs at least 2 of them."""
    from sdebench.studies.distributed import import_plugin_once

    import_plugin_once(PLUGIN)  # the client resolves the plugin's names too
    config = StudyConfig(schedules=["erf_ve"], samplers=["ralston", "heun"], steps=[8, 16, 32],
                         dim=2, batch=8, metrics=["w2"])
    result = run_study(config, ResultStore(tmp_path), progress=False, trajectories=False,
                       client=client, plugins=(PLUGIN,))
    assert len(result.results) == 6 and result.results.status.eq("ok").all(), \
        result.results.error.unique()


def test_importing_a_plugin_file_twice_in_one_process_registers_once(plugin_names):
    from sdebench.solvers.catalogue import SAMPLERS
    from sdebench.studies.distributed import import_plugin_once

    import_plugin_once(PLUGIN)
    ralston = SAMPLERS.factory("ralston")
    import_plugin_once(PLUGIN)
    import_plugin_once(os.path.relpath(PLUGIN))  # the same file under another spelling
    assert SAMPLERS.factory("ralston") is ralston


def test_a_worker_count_is_bounded_by_the_cpus_and_the_units_saying_so():
    """`--workers 100000` used to start 100000 processes."""
    from sdebench.studies.distributed import ClusterError, bounded_workers, usable_cpus

    cpus = usable_cpus()
    with pytest.warns(UserWarning, match=rf"--workers 100000: starting {cpus} worker process"
                                         rf".*one per CPU core this process may use \({cpus}\)"):
        assert bounded_workers(100000) == cpus
    with pytest.warns(UserWarning, match=r"starting 1 worker process, one per unit to run \(1\)"):
        assert bounded_workers(cpus + 1, units=1) == 1
    assert bounded_workers(1) == 1
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ClusterError, match=f"--workers must be an integer >= 1, got {bad!r}"):
            bounded_workers(bad)


def test_an_unreachable_scheduler_is_one_line_within_its_timeout():
    """An unreachable --scheduler used to wait dask's 30 s and print a traceback."""
    import socket

    from sdebench.studies.distributed import ClusterError, connect

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(ClusterError, match=rf"no dask scheduler answers at --scheduler "
                                           rf"'tcp://127.0.0.1:{port}' within 1 s"):
        connect(f"tcp://127.0.0.1:{port}", timeout=1)
    assert time.monotonic() - started < 15  # dask retries until the timeout, then gives up
    with pytest.raises(ClusterError, match="'no-port' is not a dask scheduler address"):
        connect("no-port", timeout=1)


def test_the_cli_says_a_bad_scheduler_in_one_line_and_exits_2(tmp_path, capsys):
    """experiments/convergence.py reaches --scheduler through cluster_client: a ClusterError is
    one line and exit status 2 (it was dask's traceback), and nothing is run."""
    from sdebench.experiments import convergence

    out = tmp_path / "out"
    status = convergence.main(["--samplers", "euler", "--steps", "4", "--dim", "1", "--batch",
                               "2", "--quiet", "--no-report", "--scheduler", "no-port", "--out",
                               str(out)], prog="convergence.py")
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith(
        "convergence.py: error: --scheduler 'no-port' is not a dask scheduler address"), err
    assert not any((out / "units").glob("*.json"))
