"""The sweep file: a base config and the axes over its keys, expanded into named points (pure functions).

A sweep file is TOML::

    base = "sine.toml"                 # the model config, relative to the sweep file
    seeds = [0, 1, 2]                  # optional: simulation.seed, crossed with every other axis

    [axes]                             # every key here is crossed with the others (a product)
    "training.rule" = ["eprop", "bptt"]
    network.n_rec = [100, 300]         # dotted keys may be written bare or quoted

    [[zip]]                            # optional, any number: keys varied together (equal lengths);
    "training.learning_rate" = [1e-4, 3e-4]     # each group is one axis of the product
    "training.optimizer" = ["sgd", "adam"]

    [set]                              # optional: keys changed in every point
    "training.iterations" = 20

Every point is validated by :func:`neuroplast.config.parse_config` before anything runs, so a bad value on
an axis gets the config's own one-line error, prefixed with the sweep file.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neuroplast.config import Config, load_config, parse_config, to_toml
from neuroplast.errors import ConfigError

__all__ = ["Point", "Sweep", "expand_axes", "point_name", "load_sweep", "parse_sweep", "SEED_KEY"]

#: The config key that ``seeds`` sets.
SEED_KEY = "simulation.seed"
_TOP_KEYS = ("base", "seeds", "axes", "zip", "set")
_SHORT = {"simulation.seed": "seed", "training.learning_rate": "lr"}


@dataclass(frozen=True)
class Point:
    """One run of a sweep.

    Attributes
    ----------
    name : str
        File-name stem of its run log (``<name>.h5``) and resolved config (``<name>.toml``), made from its
        axis values (:func:`point_name`).
    params : dict of str to value
        The axis values of this point, by dotted config key, in axis order.
    config : Config
        The validated, resolved config of the run.
    """

    name: str
    params: dict[str, Any]
    config: Config

    @property
    def toml(self) -> str:
        """The resolved config as TOML text (what the point's ``.toml`` file and its run log hold)."""
        return to_toml(self.config)


@dataclass(frozen=True)
class Sweep:
    """A loaded sweep file: where it is, its base config, its axes and its points (in run order)."""

    path: Path
    base: Path
    axes: tuple[str, ...]
    points: tuple[Point, ...]


def _flatten(table: Mapping[str, Any], where: str, prefix: str = "") -> dict[str, Any]:
    """Dotted keys: ``{"training": {"rule": v}}`` and ``{"training.rule": v}`` both give the latter."""
    out: dict[str, Any] = {}
    for k, v in table.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(_flatten(v, where, key))
        else:
            out[key] = v
    for key in out:
        if key.count(".") != 1 or not all(key.split(".")):
            raise ConfigError(
                f"{where}.{key}: an axis names one config key as table.key (e.g. training.rule)"
            )
    return out


def _axis_values(key: str, values: Any, where: str) -> list[Any]:
    if not isinstance(values, list):
        raise ConfigError(f"{where}.{key}: must be a list of values (got {type(values).__name__} {values!r})")
    if not values:
        raise ConfigError(f"{where}.{key}: empty axis (give at least one value)")
    return values


def expand_axes(
    product: Mapping[str, Sequence[Any]],
    zips: Sequence[Mapping[str, Sequence[Any]]] = (),
    seeds: Sequence[int] = (),
) -> list[dict[str, Any]]:
    """Every combination of the axes, in a fixed order (the first axis varies slowest, seeds fastest).

    Parameters
    ----------
    product : mapping of key to values
        Axes crossed with each other.
    zips : sequence of mappings of key to values
        Groups of axes varied together; the values of one group must have equal lengths.  Each group is one
        factor of the product, after the ``product`` axes.
    seeds : sequence of int
        Values of :data:`SEED_KEY`, the last (fastest) factor; none: no seed axis.

    Returns
    -------
    list of dict
        One ``{key: value}`` per point, keys in axis order.

    Raises
    ------
    ConfigError
        A zip group whose lists differ in length, or a key on two axes.
    """
    factors: list[list[dict[str, Any]]] = [[{k: v} for v in vals] for k, vals in product.items()]
    seen = list(product)
    for i, group in enumerate(zips):
        lengths = {k: len(v) for k, v in group.items()}
        if len(set(lengths.values())) > 1:
            detail = ", ".join(f"{k} has {n}" for k, n in lengths.items())
            raise ConfigError(f"zip[{i}]: zipped axes must have equal lengths ({detail})")
        seen += list(group)
        n = next(iter(lengths.values()), 0)
        factors.append([{k: group[k][j] for k in group} for j in range(n)])
    if seeds:
        seen.append(SEED_KEY)
        factors.append([{SEED_KEY: s} for s in seeds])
    dup = [k for k in dict.fromkeys(seen) if seen.count(k) > 1]
    if dup:
        raise ConfigError(f"{dup[0]}: on more than one axis")
    return [{k: v for part in combo for k, v in part.items()} for combo in itertools.product(*factors)]


def _fmt_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else str(v)
    if isinstance(v, (list, tuple)):
        return "+".join(_fmt_value(x) for x in v)
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", str(v)).strip("-") or "x"


def short_names(keys: Sequence[str]) -> dict[str, str]:
    """Short names of axis keys for file names: the key's last part (``rule``), ``lr``, ``seed``, or the
    whole dotted key where two axes share a last part."""
    last = [_SHORT.get(k, k.split(".")[-1]) for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last, strict=True)}


def point_name(params: Mapping[str, Any], names: Mapping[str, str] | None = None) -> str:
    """File-name stem of a point: ``rule-eprop_lr-0.0003_seed-2`` (``short-value`` per axis, ``_`` between).

    A point without axes is called ``point``.
    """
    names = short_names(list(params)) if names is None else names
    parts = [f"{names[k]}-{_fmt_value(v)}" for k, v in params.items()]
    return "_".join(parts) or "point"


def _set_key(data: dict[str, Any], key: str, value: Any) -> None:
    table, k = key.split(".")
    sub = data.setdefault(table, {})
    if not isinstance(sub, dict):
        raise ConfigError(f"{table}: must be a table")
    sub[k] = value


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a {what} file")
    if not path.is_file():
        raise ConfigError(f"{path}: {what} file not found")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid TOML (not UTF-8 text)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({str(exc).splitlines()[0]})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} file ({exc.strerror or exc})") from None


def load_sweep(path: str | Path, *, iterations: int | None = None) -> Sweep:
    """Read a sweep file and validate every point (see the module docstring for the format).

    Parameters
    ----------
    path : path
        The sweep file (TOML).
    iterations : int, optional
        ``training.iterations`` of every point (``neuroplast sweep --iterations``).

    Raises
    ------
    ConfigError
        One line starting with the sweep file: unknown top-level key, missing or bad ``base``, an axis that
        is not a list or is empty, zipped axes of unequal length, bad seeds, a point whose config is invalid
        (the config's own message: unknown key, wrong type, out of range), two points with the same name.
    """
    p = Path(path)
    data = _read_toml(p, "sweep")
    try:
        return parse_sweep(data, p, iterations=iterations)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def _seeds(value: Any) -> list[int]:
    if not isinstance(value, list) or not value:
        raise ConfigError("seeds: must be a non-empty list of integers >= 0")
    for i, s in enumerate(value):
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ConfigError(f"seeds[{i}]: must be an integer >= 0 (got {s!r})")
    return value


def parse_sweep(data: Mapping[str, Any], path: Path, *, iterations: int | None = None) -> Sweep:
    """:func:`load_sweep` on already parsed TOML (errors are not prefixed with the file)."""
    for k in data:
        if k not in _TOP_KEYS:
            raise ConfigError(f"{k}: unknown key (known: {', '.join(_TOP_KEYS)})")
    if not isinstance(data.get("base"), str):
        raise ConfigError("base: the model config to sweep over must be given as a path (a string)")
    base = (
        (path.parent / data["base"]).resolve() if not Path(data["base"]).is_absolute() else Path(data["base"])
    )
    load_config(base)  # the base config alone is valid (its own errors name it)
    base_data = _read_toml(base, "config")
    for name in ("axes", "set"):
        if not isinstance(data.get(name, {}), dict):
            raise ConfigError(f"{name}: must be a table of config keys")
    product = {k: _axis_values(k, v, "axes") for k, v in _flatten(data.get("axes", {}), "axes").items()}
    zips_raw = data.get("zip", [])
    if not isinstance(zips_raw, list) or not all(isinstance(z, dict) for z in zips_raw):
        raise ConfigError("zip: must be an array of tables ([[zip]])")
    zips = []
    for i, z in enumerate(zips_raw):
        flat = _flatten(z, f"zip[{i}]")
        if not flat:
            raise ConfigError(f"zip[{i}]: empty group (give at least one key)")
        zips.append({k: _axis_values(k, v, f"zip[{i}]") for k, v in flat.items()})
    seeds = _seeds(data["seeds"]) if "seeds" in data else []
    fixed = _flatten(data.get("set", {}), "set")
    if iterations is not None:
        fixed["training.iterations"] = iterations
    combos = expand_axes(product, zips, seeds)
    axes = tuple(combos[0])
    names = short_names(list(axes))
    points, by_name = [], {}
    for params in combos:
        name = point_name(params, names)
        cfg_data = copy.deepcopy(base_data)
        for key, value in {**fixed, **params}.items():
            _set_key(cfg_data, key, value)
        where = f"point {name}"
        try:
            cfg = parse_config(cfg_data, where)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if name in by_name:
            raise ConfigError(
                f"points {by_name[name]} and {dict(params)} would both write {name}.h5 "
                "(repeated or indistinguishable axis values)"
            )
        by_name[name] = dict(params)
        points.append(Point(name, dict(params), cfg))
    return Sweep(path, base, axes, tuple(points))
