"""Run a study's units on dask.distributed: one task per unit, results written by the client.

A unit is a pure function of the study configuration and its identifier: a worker rebuilds the
unit from the (small, picklable) configuration — schedules and their lambdified functions are
made where they are used — runs it and returns its rows. Only the client process writes the
result store, as each task completes; results arrive out of order and the store does not depend
on their order. Faults are dask's to handle: a task whose worker dies is run again on another
worker (at most ``distributed.scheduler.allowed-failures`` times, then the unit is recorded as
failed); a unit whose sampler raises returns a ``failed`` row itself; Ctrl-C cancels what is
still pending and leaves the store valid (every stored unit is a whole file).

Setting up: :func:`cluster_client` gives a client of an embedded :func:`local_cluster` (its
worker count bounded by the CPU cores this process may use and the units to run, saying so) or
of a running scheduler (reached within a timeout, or one line saying it cannot be); what goes
wrong there is a :class:`ClusterError` with one line naming the input.

``dask[distributed]`` is an optional extra (``pip install 'sdebench[distributed]'``), imported
only here.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from sdebench.studies.config import StudyConfig, Unit, resolve_sections, resolve_units
from sdebench.studies.outcomes import failed_rows

CONNECT_TIMEOUT = 15.0
"""Seconds to wait for a ``--scheduler`` to answer (dask's own default is 30 s, then a
traceback)."""


class ClusterError(RuntimeError):
    """A dask cluster that cannot be used: an address that is none, or no scheduler there."""


def require_dask():
    try:
        import distributed
    except ImportError:
        raise ImportError("running units on dask needs dask.distributed: "
                          "pip install 'sdebench[distributed]'") from None
    return distributed


def usable_cpus() -> int:
    """The CPU cores this process may run on (its affinity mask, e.g. a container's or a batch
    job's share; all of the machine's where the platform has no mask)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def bounded_workers(requested: int, units: int | None = None) -> int:
    """The worker processes worth starting for ``requested``: at most one per usable CPU core
    (a unit keeps a core busy; more processes only share them and multiply the memory) and one
    per unit to run. A smaller count than requested is said in a warning."""
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        raise ClusterError(f"--workers must be an integer >= 1, got {requested!r}")
    cpus = usable_cpus()
    count = min(requested, cpus, units if units else requested)
    if count < requested:
        why = (f"one per unit to run ({units})" if units and units <= cpus else
               f"one per CPU core this process may use ({cpus})")
        warnings.warn(f"--workers {requested}: starting {count} worker process"
                      f"{'es' * (count != 1)}, {why}", stacklevel=2)
    return count


def local_cluster(workers: int, gpus: int = 0, units: int | None = None):
    """An embedded LocalCluster of :func:`bounded_workers` ``(workers, units)`` single-threaded
    processes (torch in each uses cpu_count/workers threads); with ``gpus``, each worker offers
    the resource GPU=1. Its dashboard listens on a free port (``cluster.dashboard_link``),
    never a fixed one that a second study on the machine would clash with."""
    distributed = require_dask()
    resources = {"GPU": 1} if gpus else None
    return distributed.LocalCluster(n_workers=bounded_workers(workers, units),
                                    threads_per_worker=1, processes=True,
                                    dashboard_address=":0", resources=resources)


def connect(address: str, timeout: float = CONNECT_TIMEOUT):
    """A client of the scheduler at ``address``; :class:`ClusterError` (one line) when the
    address is malformed or no scheduler answers within ``timeout`` seconds."""
    distributed = require_dask()
    try:
        return distributed.Client(address, timeout=timeout)
    except (ValueError, TypeError) as error:
        raise ClusterError(f"--scheduler {address!r} is not a dask scheduler address ({error}); "
                           "expected e.g. tcp://host:8786") from None
    except OSError:
        raise ClusterError(f"no dask scheduler answers at --scheduler {address!r} within "
                           f"{timeout:g} s: start one (`dask scheduler`) or check the address"
                           ) from None


@contextlib.contextmanager
def cluster_client(*, workers: int = 0, scheduler: str | None = None, gpus: int = 0,
                   units: int | None = None) -> Iterator:
    """A client of an embedded :func:`local_cluster` of ``workers`` processes, or of the
    running ``scheduler`` (:func:`connect`); both are closed on exit."""
    if bool(workers) == bool(scheduler):
        raise ClusterError("give either a worker count or a scheduler address, not "
                           f"{'both' if workers else 'neither'}")
    cluster = None if scheduler else local_cluster(workers, gpus, units)
    try:
        client = connect(scheduler) if scheduler else require_dask().Client(cluster)
        with client:
            yield client
    finally:
        if cluster is not None:
            cluster.close()


@functools.lru_cache(maxsize=4)
def _units(config: StudyConfig) -> dict[str, Unit]:
    return {unit.unit_id: unit for unit in resolve_units(config, resolve_sections(config))}


_warmed_up: set = set()


def import_plugin_once(name: str) -> None:
    """Import the plugin ``name`` (a module or a ``.py`` file) unless this process has it: a
    worker runs many units, and importing a file again would register its names again (a
    registry refuses a second, different object under a taken name)."""
    from sdebench.registry import import_module

    if name.endswith(".py"):
        loaded = getattr(sys.modules.get(Path(name).stem), "__file__", None)
        if loaded is not None and Path(loaded).resolve() == Path(name).resolve():
            return
    elif name in sys.modules:
        return
    import_module(name)


def run_unit_task(config: StudyConfig, unit_id: str, plugins: tuple[str, ...],
                  torch_threads: int | None) -> tuple[str, list[dict], list[dict]]:
    """Runs on a worker: import the study's plugins, rebuild the unit (cached per process),
    warm the process up once per section, and return (unit_id, rows, points)."""
    import torch

    from sdebench.studies.units import run_unit, warm_up

    for plugin in plugins:
        import_plugin_once(plugin)
    if torch_threads:
        torch.set_num_threads(torch_threads)
    units = _units(config)
    if unit_id not in units:
        raise RuntimeError(f"unit {unit_id} is not among the units this worker resolves from the "
                           "study's configuration: its code differs from the client's (the "
                           "source changed while the study ran, or another sdebench version "
                           "is installed there); re-run the command")
    unit = units[unit_id]
    if unit.section.config_id not in _warmed_up:
        warm_up([unit])
        _warmed_up.add(unit.section.config_id)
    rows, points = run_unit(config, unit)
    return unit_id, rows, points


def run_units(client, config: StudyConfig, units: list[Unit],
              on_result: Callable[[Unit, list[dict], list[dict]], None], *,
              plugins: tuple[str, ...] = (), progress: bool = True) -> None:
    """Submit one task per unit and hand each result to ``on_result`` as it completes (in the
    client process). Units on a CUDA device ask for the resource GPU=1, so a worker runs one
    at a time; a cluster without that resource is refused before anything runs."""
    distributed = require_dask()
    from tqdm.auto import tqdm

    resources = None
    if config.device.startswith("cuda"):
        offered = [info.get("resources", {}) for info in
                   client.scheduler_info()["workers"].values()]
        if not any("GPU" in r for r in offered):
            raise ValueError("--device cuda on dask needs workers that offer the resource GPU "
                             "(dask-cuda-worker --resources GPU=1, or LocalCluster(resources=…))")
        resources = {"GPU": 1}
    workers = max(1, len(client.scheduler_info()["workers"]))
    threads = None if resources else max(1, math.floor((os.cpu_count() or 1) / workers))
    futures = [client.submit(run_unit_task, config, unit.unit_id, tuple(plugins), threads,
                             key=f"sdebench-unit-{unit.unit_id}", resources=resources, pure=False)
               for unit in units]
    by_key = {future.key: unit for future, unit in zip(futures, units, strict=True)}
    try:
        with tqdm(total=len(futures), disable=not progress, desc="study", unit="unit") as bar:
            for future in distributed.as_completed(futures):
                unit = by_key[future.key]
                try:
                    _, rows, points = future.result()
                except Exception as error:  # e.g. KilledWorker: its worker died too often
                    rows, points = failed_rows(unit, error), []
                on_result(unit, rows, points)
                bar.update()
    except BaseException:
        client.cancel(futures)
        raise
