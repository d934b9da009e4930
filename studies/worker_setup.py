"""dask preload for the workers of :func:`sdebench.studies.distributed.local_cluster`.

Ctrl-C at the terminal reaches every process of the study's process group; the client alone
handles it (stores what finished, closes the cluster, says how to resume), so the workers
ignore SIGINT instead of each printing a KeyboardInterrupt traceback. The cluster still stops
them when it closes (the nanny terminates its worker)."""

from __future__ import annotations

import signal


def dask_setup(worker) -> None:
    """Called by dask in each worker process as it starts (the ``preload`` protocol)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
