"""Compare two HDF5 files object by object: the same groups, datasets, dtypes, shapes, values and attributes.

Used to prove that a change leaves a run log's content untouched (a refactor, a resumed run, a sweep point
run alone), and by the tests.  Floating-point data are compared bit for bit (NaN equals NaN, −0.0 differs
from 0.0); the attributes named in ``ignore_attrs`` (by default the software versions) are skipped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

__all__ = ["VERSION_ATTRS", "content_digests", "diff_digests", "diff_files"]

#: Root attributes that name software versions (they differ between installations, not between runs).
VERSION_ATTRS = ("neuroplast_version", "brian2_version")


def _same(x: Any, y: Any) -> bool:
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != y.dtype or x.shape != y.shape:
        return False
    if x.dtype.kind in "fc":
        return x.tobytes() == y.tobytes()
    return np.array_equal(x, y)


def _objects(f: h5py.File) -> dict[str, h5py.HLObject]:
    out: dict[str, h5py.HLObject] = {"/": f}
    f.visititems(lambda name, obj: out.__setitem__(name, obj))
    return out


def _describe(obj: h5py.HLObject) -> str:
    return "group" if isinstance(obj, h5py.Group) else f"dataset {obj.dtype} {obj.shape}"


def diff_files(a: str | Path, b: str | Path, *, ignore_attrs: Iterable[str] = VERSION_ATTRS) -> list[str]:
    """Differences between two HDF5 files, one line each (empty when their content is the same).

    Parameters
    ----------
    a, b : path
        The files.
    ignore_attrs : iterable of str
        Attribute names not compared (on any object).

    Returns
    -------
    list of str
        E.g. ``"/trials/loss: values differ"`` or ``"/ attribute 'seed': 1 != 2"``.
    """
    skip = set(ignore_attrs)
    out: list[str] = []
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        oa, ob = _objects(fa), _objects(fb)
        for name in sorted(set(oa) | set(ob)):
            if name not in oa or name not in ob:
                out.append(f"{name}: only in {'b' if name not in oa else 'a'}")
                continue
            x, y = oa[name], ob[name]
            if _describe(x) != _describe(y):
                out.append(f"{name}: {_describe(x)} != {_describe(y)}")
                continue
            if isinstance(x, h5py.Dataset) and not _same(x[()], y[()]):
                out.append(f"{name}: values differ")
            for k in sorted((set(x.attrs) | set(y.attrs)) - skip):
                if k not in x.attrs or k not in y.attrs:
                    out.append(f"{name} attribute {k!r}: only in {'b' if k not in x.attrs else 'a'}")
                elif not _same(x.attrs[k], y.attrs[k]):
                    out.append(f"{name} attribute {k!r}: {x.attrs[k]!r} != {y.attrs[k]!r}")
    return out


def _value_bytes(x: Any) -> bytes:
    a = np.asarray(x)
    if a.dtype.kind == "O":  # variable-length strings
        return repr([v.decode() if isinstance(v, bytes) else v for v in a.ravel().tolist()]).encode()
    return f"{a.dtype.str}{a.shape}".encode() + np.ascontiguousarray(a).tobytes()


def content_digests(path: str | Path, *, ignore_attrs: Iterable[str] = VERSION_ATTRS) -> dict[str, str]:
    """A SHA-256 digest of every object of an HDF5 file: its kind, dtype, shape, values (bit for bit) and
    attributes (those in ``ignore_attrs`` left out).

    Two files have equal digests exactly when :func:`diff_files` finds no difference (up to hash
    collisions), so a run log's content can be checked against digests stored elsewhere (e.g. the default
    model's log on another Python, ``data/quickstart_sine.json``) without storing the log.

    Returns
    -------
    dict of str to str
        Object name (``"/"`` for the root) → hexadecimal digest.
    """
    skip = set(ignore_attrs)
    out: dict[str, str] = {}
    with h5py.File(path, "r") as f:
        for name, obj in sorted(_objects(f).items()):
            h = hashlib.sha256(_describe(obj).encode())
            if isinstance(obj, h5py.Dataset):
                h.update(_value_bytes(obj[()]))
            for k in sorted(set(obj.attrs) - skip):
                h.update(k.encode() + b"=" + _value_bytes(obj.attrs[k]))
            out[name] = h.hexdigest()
    return out


def diff_digests(want: Mapping[str, str], got: Mapping[str, str]) -> list[str]:
    """The objects whose digests differ, one line each (empty when the contents are the same)."""
    out = []
    for name in sorted(set(want) | set(got)):
        if name not in want or name not in got:
            out.append(f"{name}: only in {'the reference' if name not in got else 'this file'}")
        elif want[name] != got[name]:
            out.append(f"{name}: content differs")
    return out
