"""Where the ladder's trainings run: in the flow's own process (the default), or spread over a Dask cluster through
Prefect's Dask integration (``prefect-dask``, in the ``team`` extra).

``local`` starts a ``distributed.LocalCluster`` of worker processes on this machine (one thread each: a torch
training wants its own process state and its own cores); an address (``tcp://scheduler:8786``) uses a cluster that
is already running, e.g. one ``dask scheduler`` plus a ``dask worker`` per GPU node. Only the trainings are
submitted; every other stage runs in the flow's process. Why Dask rather than Ray: docs/decisions.md.
"""

from __future__ import annotations

from typing import Any


def task_runner(cluster: str | None, workers: int = 2) -> Any:
    """A Prefect task runner for ``cluster`` (None: the flow's in-process default)."""
    if not cluster:
        return None
    from prefect_dask.task_runners import DaskTaskRunner

    if cluster == "local":
        return DaskTaskRunner(
            cluster_class="distributed.LocalCluster",
            cluster_kwargs={
                "n_workers": workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
            },
        )
    if not cluster.startswith(("tcp://", "tls://", "ws://", "wss://")):
        raise ValueError(f"--cluster: 'local' or a Dask scheduler address (tcp://host:8786), not {cluster!r}")
    return DaskTaskRunner(address=cluster)
