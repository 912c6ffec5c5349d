"""The Dask worker plugin of a sweep: prepares every worker process before it runs a point.

Brian2 installs a SIGINT handler when it is first imported, which Python allows only in a process's main
thread, while Dask runs tasks in a thread pool; the plugin's ``setup`` runs on the worker's event loop (its
main thread) and configures Brian2 there (:func:`neuroplast.network.devices.configure_brian2`), after
pointing ``NEUROPLAST_CACHE`` at the driver's cache folder when the cluster is local.
"""

from __future__ import annotations

import os
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

__all__ = ["PrepareWorker"]


class PrepareWorker(WorkerPlugin):
    """Set the compile-cache folder (``cache``, or None to keep the worker's own) and import Brian2."""

    name = "neuroplast-sweep-prepare"

    def __init__(self, cache: str | None) -> None:
        self.cache = cache

    def setup(self, worker: Any) -> None:
        if self.cache:
            os.environ["NEUROPLAST_CACHE"] = self.cache
        from neuroplast.network.devices import configure_brian2

        configure_brian2()
