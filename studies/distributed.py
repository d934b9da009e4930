"""Run a study's units on dask.distributed: one task per unit, results written by the client.

A unit is a pure function of the study configuration and its identifier: a worker rebuilds the
unit from the (small, picklable) configuration — schedules and their lambdified functions are
made where they are used — runs it and returns its rows. Only the client process writes the
result store, as each task completes; results arrive out of order and the store does not depend
on their order. Faults are dask's to handle: a task whose worker dies is run again on another
worker (at most ``distributed.scheduler.allowed-failures`` times, then the unit is recorded as
failed); a unit whose sampler raises returns a ``failed`` row itself; Ctrl-C cancels what is
still pending and leaves the store valid (every stored unit is a whole file).

``dask[distributed]`` is an optional extra (``pip install 'sdebench[distributed]'``), imported
only here.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable

from sdebench.studies.config import StudyConfig, Unit, resolve_sections, resolve_units
from sdebench.studies.outcomes import failed_rows


def require_dask():
    try:
        import distributed
    except ImportError:
        raise ImportError("running units on dask needs dask.distributed: "
                          "pip install 'sdebench[distributed]'") from None
    return distributed


def local_cluster(workers: int, gpus: int = 0):
    """An embedded LocalCluster of ``workers`` single-threaded processes (torch in each uses
    cpu_count/workers threads); with ``gpus``, each worker offers the resource GPU=1. Its
    dashboard listens on a free port (``cluster.dashboard_link``), never a fixed one that a
    second study on the machine would clash with."""
    distributed = require_dask()
    resources = {"GPU": 1} if gpus else None
    return distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                    dashboard_address=":0", resources=resources)


@functools.lru_cache(maxsize=4)
def _units(config: StudyConfig) -> dict[str, Unit]:
    return {unit.unit_id: unit for unit in resolve_units(config, resolve_sections(config))}


_warmed_up: set = set()


def run_unit_task(config: StudyConfig, unit_id: str, plugins: tuple[str, ...],
                  torch_threads: int | None) -> tuple[str, list[dict], list[dict]]:
    """Runs on a worker: import the study's plugins, rebuild the unit (cached per process),
    warm the process up once per section, and return (unit_id, rows, points)."""
    import torch

    from sdebench.registry import import_module
    from sdebench.studies.units import run_unit, warm_up

    for plugin in plugins:
        import_module(plugin)
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
              on_result: Callable[[str, list[dict], list[dict]], None], *,
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
                    unit_id, rows, points = future.result()
                except Exception as error:  # e.g. KilledWorker: its worker died too often
                    unit_id, rows, points = unit.unit_id, failed_rows(unit, error), []
                on_result(unit_id, rows, points)
                bar.update()
    except BaseException:
        client.cancel(futures)
        raise
