"""One sweep point, run inside a Dask worker process: an ordinary ``neuroplast run`` of its resolved config.

The point trains through :func:`neuroplast.training.runner.run_training`, the code path of
``neuroplast run``; a run log left behind by a killed attempt (a dead worker, a killed sweep) is continued
through the log's own resume, bit for bit, and a finished one is left as it is.  Any error is returned as a
one-line message, so that one failing point never stops the others.
"""

from __future__ import annotations

import os
import time
import tomllib
from pathlib import Path
from typing import Any

from neuroplast.errors import first_line

__all__ = ["TOPIC", "run_point", "failure_line"]

#: Dask event topic on which a worker says that it started a point (``{"point": name}``).
TOPIC = "neuroplast-sweep"


def failure_line(exc: BaseException) -> str:
    """The one-line ``error`` of a failed point: ``"<type>: <first line>"`` (just the type when the message
    is blank), for failures inside a point and of its worker (e.g. ``KilledWorker``) alike."""
    name = type(exc).__name__
    return f"{name}: {first_line(exc)}" if str(exc).strip() else name


def _announce(name: str) -> None:
    try:
        from distributed import get_worker

        get_worker().log_event(TOPIC, {"point": name, "pid": os.getpid()})
    except (ImportError, ValueError):  # not inside a Dask worker (a direct call): nobody to tell
        pass


def run_point(task: dict[str, Any]) -> dict[str, Any]:
    """Train one point and return its outcome.

    Parameters
    ----------
    task : dict
        ``name`` (file stem), ``config`` (resolved TOML text), ``out`` (the sweep folder, as seen from the
        worker) and ``cache`` (the NEUROPLAST_CACHE folder the worker must use, or None to keep its own).

    Returns
    -------
    dict
        ``state`` (``"done"`` or ``"failed"``), ``error`` (one line, or None), ``wall_s`` (s, this
        attempt), ``resumed`` (whether an existing log was continued) and ``pid`` (the worker process).
    """
    t0 = time.monotonic()
    name = task["name"]
    _announce(name)
    if task.get("cache"):
        os.environ["NEUROPLAST_CACHE"] = str(task["cache"])
    log = Path(task["out"]) / f"{name}.h5"
    resumed = log.exists()
    try:
        from neuroplast.config import parse_config
        from neuroplast.training.runner import run_training

        cfg = parse_config(tomllib.loads(task["config"]), f"{name}.toml")
        if resumed:
            run_training(cfg, None, resume=log, progress=False)
        else:
            run_training(cfg, log, progress=False)
        state, error = "done", None
    except Exception as exc:  # noqa: BLE001 - every failure of a point is recorded, the sweep goes on
        state, error = "failed", failure_line(exc)
    return {
        "state": state,
        "error": error,
        "wall_s": time.monotonic() - t0,
        "resumed": resumed,
        "pid": os.getpid(),
    }
