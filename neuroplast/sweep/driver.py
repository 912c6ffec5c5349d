"""``neuroplast sweep``: run every point of a sweep file on a Dask cluster and keep the manifest.

The driver prepares the output folder (each point's resolved config, the manifest), connects to a
scheduler (``distributed.Client(address)``) or starts a :class:`distributed.LocalCluster` of worker
processes (one thread each), submits one task per point that is not done yet
(:func:`neuroplast.sweep.worker.run_point`) and records every outcome in the manifest as it arrives.

Robustness: a point that fails is recorded with its one-line error and the others go on; a point whose
worker died is run again once by Dask (``distributed.scheduler.allowed-failures = 1`` on the local
cluster), continuing its run log; ``resume=True`` skips finished points and continues interrupted ones
through the run log's own resume.  No two points write the same file (:func:`neuroplast.sweep.spec.load_sweep`
refuses names that collide), and without ``resume`` no existing file is overwritten.
"""

from __future__ import annotations

import os
import queue
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from neuroplast.errors import ConfigError, UsageError
from neuroplast.progress import fmt_seconds
from neuroplast.sweep.manifest import MANIFEST, new_manifest, read_manifest, write_manifest
from neuroplast.sweep.spec import Sweep
from neuroplast.sweep.worker import TOPIC, failure_line, run_point

__all__ = ["run_sweep", "connect", "import_distributed", "SweepProgress"]


#: Thread-count variables of the BLAS libraries (their value changes NumPy's summation order).
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def import_distributed() -> Any:
    """``distributed``, or a one-line :class:`UsageError` saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise UsageError(
            "dask.distributed is not installed; install it with: pip install 'neuroplast[sweep]'"
        ) from None
    return distributed


def connect(scheduler: str | None, workers: int) -> tuple[Any, Any]:
    """A Dask client: on the scheduler at ``scheduler`` (``tcp://host:port``), else on a new local cluster.

    Parameters
    ----------
    scheduler : str or None
        Address of a running scheduler (dask-jobqueue, Kubernetes, ``dask scheduler``), passed to
        ``distributed.Client``.
    workers : int
        Worker processes of the local cluster (one thread each), when no scheduler is given.

    Returns
    -------
    (Client, LocalCluster or None)
    """
    distributed = import_distributed()
    if scheduler is not None:
        try:
            return distributed.Client(scheduler, timeout="20s"), None
        except (OSError, TimeoutError) as exc:
            raise UsageError(
                f"--scheduler {scheduler}: cannot connect ({str(exc).splitlines()[0]})"
            ) from None
    import logging

    import dask

    dashboard = "127.0.0.1:0" if _bokeh() else None
    # Dask's nanny sets OMP/MKL/OPENBLAS_NUM_THREADS=1 in its workers; NumPy's BLAS then sums in another
    # order than in `neuroplast run`, and a BPTT or factorized point would differ from the same run alone
    # in the last bits.  The workers keep this process's thread settings instead.
    environ = {
        k: v
        for k, v in dask.config.get("distributed.nanny.pre-spawn-environ", {}).items()
        if k not in THREAD_VARS
    }
    environ.update({k: os.environ[k] for k in THREAD_VARS if k in os.environ})
    settings = {
        "distributed.scheduler.allowed-failures": 1,  # a point whose worker dies is retried once
        "distributed.nanny.pre-spawn-environ": environ,
    }
    with dask.config.set(settings):
        cluster = distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=dashboard,
            silence_logs=logging.ERROR,
        )
    return distributed.Client(cluster), cluster


def _bokeh() -> bool:
    """Whether bokeh, which the Dask dashboard needs, is installed here."""
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def _has_dashboard(client: Any) -> bool:
    """Whether the scheduler serves a dashboard (it needs bokeh; a remote one says so in its services)."""
    try:
        return "dashboard" in client.scheduler_info().get("services", {})
    except Exception:  # noqa: BLE001 - an old or unusual scheduler: say nothing
        return False


class SweepProgress:
    """One plain line per change of the points' states: done/failed/running/pending, elapsed and ETA.

    The ETA is the elapsed time per point finished in this session times the points left (it starts with
    the first finished point).
    """

    def __init__(self, total: int, skipped: int, *, enabled: bool = True, stream: TextIO | None = None):
        self.total, self.skipped, self.enabled = total, skipped, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.t0 = time.monotonic()
        self.last = ""

    def update(self, points: list[dict[str, Any]]) -> None:
        n = {s: sum(p["state"] == s for p in points) for s in ("done", "failed", "running", "pending")}
        finished_now = n["done"] + n["failed"] - self.skipped
        elapsed = time.monotonic() - self.t0
        left = n["running"] + n["pending"]
        eta = f", ETA {fmt_seconds(elapsed / finished_now * left)}" if finished_now > 0 and left else ""
        line = (
            f"sweep: {n['done']}/{self.total} done, {n['failed']} failed, {n['running']} running, "
            f"{n['pending']} pending"
        )
        if self.enabled and line != self.last:
            print(f"{line} ({fmt_seconds(elapsed)}{eta})", file=self.stream, flush=True)
        self.last = line


def _finished_log(path: Path, toml: str) -> bool:
    """Whether ``path`` is a finished run log of exactly the config ``toml``."""
    from neuroplast.io import open_run
    from neuroplast.io.schema import RunFileError

    if not path.is_file():
        return False
    try:
        run = open_run(path)
    except (RunFileError, OSError):
        return False
    return run.finished and run.diverged is None and run.config_toml == toml


def _prepare(sweep: Sweep, out: Path, resume: bool) -> dict[str, Any]:
    """Create the folder, check it against the sweep, write every point's config; return the manifest."""
    from neuroplast.config import check_log_size

    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    if resume:
        manifest = read_manifest(out)
        names = [p["name"] for p in manifest["points"]]
        if names != [p.name for p in sweep.points]:
            missing = sorted(set(p.name for p in sweep.points) ^ set(names)) or ["a different order"]
            raise ConfigError(
                f"{out / MANIFEST}: lists other points than {sweep.path} (e.g. {missing[0]})"
                "; resume with the same sweep file, or write to a new --out"
            )
    else:
        if (out / MANIFEST).exists():
            raise UsageError(
                f"--out {out}: holds a sweep already; use --resume to continue it, or a new --out"
            )
        for p in sweep.points:
            for f in (out / f"{p.name}.h5", out / f"{p.name}.toml"):
                if f.exists():
                    raise UsageError(f"{f}: exists; a sweep never overwrites a file (use a new --out)")
        if not out.parent.is_dir():
            raise UsageError(f"--out {out}: parent folder {out.parent} does not exist")
        manifest = new_manifest(sweep)
    out.mkdir(exist_ok=True)
    if not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: folder is not writable")
    for p, entry in zip(sweep.points, manifest["points"], strict=True):
        check_log_size(p.config, out)
        if resume and entry["state"] == "done" and not _finished_log(out / entry["log"], p.toml):
            entry["state"], entry["error"] = (
                "pending",
                None,
            )  # its log is missing, damaged or of another config
        elif resume and entry["state"] != "done":
            entry["state"], entry["error"] = "pending", None
        if not (out / entry["config"]).is_file() or (out / entry["config"]).read_text() != p.toml:
            tmp = out / f".{entry['config']}.tmp"
            tmp.write_text(p.toml)
            os.replace(tmp, out / entry["config"])
    write_manifest(out, manifest)
    return manifest


def run_sweep(
    sweep: Sweep,
    out: str | Path,
    *,
    scheduler: str | None = None,
    workers: int = 2,
    resume: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every point of ``sweep`` that is not done yet, writing ``out/<point>.h5`` and the manifest.

    Parameters
    ----------
    sweep : Sweep
        From :func:`neuroplast.sweep.spec.load_sweep`.
    out : path
        The sweep folder (created).  Without ``resume`` it must not hold the manifest or any point's file.
    scheduler : str, optional
        Address of a running Dask scheduler; else a local cluster of ``workers`` processes.
    workers : int
        Worker processes of the local cluster.
    resume : bool
        Continue the sweep in ``out``: finished points are skipped, the others (interrupted, failed,
        pending) are run, an interrupted run log continued through its own resume.
    progress : bool
        Print a line on stderr whenever the points' states change.
    echo : callable
        Where the lines for the user go (the dashboard address).

    Returns
    -------
    dict
        The final manifest (also in ``out/sweep.json``).
    """
    out = Path(out)
    manifest = _prepare(sweep, out, resume)
    entries = {e["name"]: e for e in manifest["points"]}
    todo = [p for p in sweep.points if entries[p.name]["state"] != "done"]
    bar = SweepProgress(len(entries), len(entries) - len(todo), enabled=progress)
    if not todo:
        bar.update(manifest["points"])
        return manifest
    client, cluster = connect(scheduler, workers)
    cluster_dashboard = _bokeh()
    try:
        if (cluster is None or cluster_dashboard) and _has_dashboard(client):
            echo(f"dask dashboard: {client.dashboard_link}")
        _run(client, todo, entries, manifest, out, local=cluster is not None, bar=bar)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return manifest


def _run(
    client: Any,
    todo: list[Any],
    entries: dict[str, dict[str, Any]],
    manifest: dict[str, Any],
    out: Path,
    *,
    local: bool,
    bar: SweepProgress,
) -> None:
    """Submit the points, then record every start and outcome in the manifest as it arrives."""
    from distributed import wait

    from neuroplast.sweep.plugin import PrepareWorker

    started: queue.Queue[str] = queue.Queue()
    client.subscribe_topic(TOPIC, lambda event: started.put(event[1]["point"]))
    cache = None
    if local:  # the workers are processes of this machine: they use this process's cache folder
        from neuroplast.network.devices import cache_dir

        cache = str(cache_dir())
    client.register_plugin(PrepareWorker(cache))
    futures = {}
    for i, p in enumerate(todo):
        task = {"name": p.name, "config": p.toml, "out": str(out.resolve()), "cache": cache}
        # in sweep order (a higher priority runs first); each key is the point's name, so it runs once
        fut = client.submit(
            run_point, task, key=f"neuroplast-point-{p.name}", pure=False, priority=len(todo) - i
        )
        futures[fut] = p.name
    bar.update(manifest["points"])
    pending = set(futures)
    while pending:
        try:
            done, pending = wait(pending, timeout=0.5, return_when="FIRST_COMPLETED")
        except TimeoutError:
            done = set()
        changed = False
        while not started.empty():
            e = entries[started.get()]
            if e["state"] in ("pending", "running"):
                e["state"] = "running"
                e["attempts"] += 1
                changed = True
        for fut in done:
            e = entries[futures[fut]]
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: the worker died twice
                res = {"state": "failed", "error": failure_line(exc), "wall_s": None}
            e.update(state=res["state"], error=res["error"], wall_s=res["wall_s"])
            changed = True
        if changed:
            write_manifest(out, manifest)
            bar.update(manifest["points"])
