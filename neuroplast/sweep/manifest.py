"""The sweep manifest ``DIR/sweep.json``: every point, its state, its files and its wall time.

Only the driver writes it, always whole and atomically (a temporary file in the same folder, flushed and
renamed over the old one), so a killed sweep leaves the last complete manifest behind.

Layout::

    {"format": "neuroplast-sweep", "version": 1, "sweep_file": "...", "base": "...",
     "axes": ["training.rule", "simulation.seed"],
     "points": [{"name": "rule-eprop_seed-0", "params": {"training.rule": "eprop", "simulation.seed": 0},
                 "log": "rule-eprop_seed-0.h5", "config": "rule-eprop_seed-0.toml",
                 "state": "done", "error": null, "wall_s": 31.2, "attempts": 1}, ...]}

``state`` is ``pending``, ``running``, ``done`` or ``failed`` (then ``error`` is the one-line message).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from neuroplast.errors import ConfigError

__all__ = ["MANIFEST", "FORMAT", "STATES", "new_manifest", "read_manifest", "write_manifest"]

MANIFEST = "sweep.json"
FORMAT = "neuroplast-sweep"
STATES = ("pending", "running", "done", "failed")


def new_manifest(sweep: Any) -> dict[str, Any]:
    """A manifest with every point of ``sweep`` (a :class:`~neuroplast.sweep.spec.Sweep`) pending."""
    return {
        "format": FORMAT,
        "version": 1,
        "sweep_file": str(sweep.path),
        "base": str(sweep.base),
        "axes": list(sweep.axes),
        "points": [
            {
                "name": p.name,
                "params": p.params,
                "log": f"{p.name}.h5",
                "config": f"{p.name}.toml",
                "state": "pending",
                "error": None,
                "wall_s": None,
                "attempts": 0,
            }
            for p in sweep.points
        ],
    }


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """Read ``folder/sweep.json``.

    Raises
    ------
    ConfigError
        One line naming the file: missing, not JSON, or not a neuroplast sweep manifest.
    """
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ConfigError(f"{path}: no sweep manifest here (written by `neuroplast sweep`)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: damaged sweep manifest ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("points"), list):
        raise ConfigError(f"{path}: not a neuroplast sweep manifest")
    for p in data["points"]:
        if not isinstance(p, dict) or p.get("state") not in STATES or not isinstance(p.get("name"), str):
            raise ConfigError(f"{path}: damaged sweep manifest (a point without name or state)")
    return data


def write_manifest(folder: str | Path, manifest: dict[str, Any]) -> Path:
    """Write ``folder/sweep.json`` atomically (temporary file, fsync, rename); returns its path."""
    path = Path(folder) / MANIFEST
    fd, tmp = tempfile.mkstemp(prefix=".sweep.", suffix=".json.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=1)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
