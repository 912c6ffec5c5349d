"""Layout constants of the ``neuroplast-run`` HDF5 run log (see ``docs/hdf5.md``).

Everything the writer and the reader must agree on lives here: group and dataset names, dtypes, the SONATA
``sorting`` enum and the HDF5 file-format bounds.

Notes
-----
Two measured traps shape these constants:

* libsonata 0.2.2 cannot read gzip/lzf compressed datasets, so nothing is compressed.
* A file written with a *lower* format bound of ``v110`` or newer (``libver="latest"`` included) gets a
  version-3 superblock whose "open for write" flag stays set if the writer is killed; HDF5 then refuses to
  open it ("file is already open for write, use h5clear").  Files are therefore created with
  ``libver=("earliest", "v110")``: readable by libsonata and by older HDF5, readable after ``kill -9``,
  and still allowed to use dense attribute storage for a long ``config`` attribute.
"""

from __future__ import annotations

import re

import h5py
import numpy as np

from neuroplast.errors import RunFileError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "LIBVER",
    "BIAS_PROJECTION",
    "TRIAL_COLUMNS",
    "TRIAL_UNITS",
    "MODEL_UNITS",
    "column_units",
    "parameter_units",
    "SORTING",
    "RunFileError",
    "sorting_dtype",
    "check_name",
    "report_root",
    "report_var",
    "is_hidden",
    "gradient_names",
    "per_trial_datasets",
    "count_attr",
    "complete_trials",
    "complete_iterations",
]

#: Value of the root attribute ``format``.
FORMAT_NAME = "neuroplast-run"
#: Integer layout version written to the root attribute ``format_version``; readers refuse newer files.
#: 2: the resume slots hold edge vectors (version 1: dense matrices; still read, and resumed: a resumed
#: version-1 log becomes version 2, its next slots written as edge vectors).
FORMAT_VERSION = 2
#: HDF5 format bounds used for every file written (see module notes).
LIBVER: tuple[str, str] = ("earliest", "v110")

#: The readout bias, stored as a pseudo-projection (not a SONATA edge population).
BIAS_PROJECTION = "bias"

#: Mandatory per-trial columns under ``/trials`` (extra float64 columns may follow).
TRIAL_COLUMNS = ("start_step", "n_steps", "iteration", "loss")
#: dtypes of the mandatory trial columns.
TRIAL_DTYPES = {"start_step": np.int64, "n_steps": np.int64, "iteration": np.int64, "loss": np.float64}

#: Units (the ``units`` attribute) of the per-trial columns neuroplast writes; :func:`column_units` gives
#: any other column's.  ``"1"`` is dimensionless (losses, fractions, counts, the iteration index).
TRIAL_UNITS = {
    "start_step": "steps",
    "n_steps": "steps",
    "iteration": "1",
    "loss": "1",
    "accuracy": "1",
    "rate_hz": "Hz",
}
#: Units of an extra column named ``<what>_<suffix>`` not in :data:`TRIAL_UNITS`, by its suffix.
UNIT_SUFFIXES = {"hz": "Hz", "ms": "ms", "s": "s"}
#: Units of the datasets of ``/targets`` and of every ``/projections/<name>`` group other than the node
#: ids: the model's own, dimensionless units (docs/model.md), ``"1"``.
MODEL_UNITS = "1"


def column_units(name: str) -> str:
    """Units of the per-trial column ``name``: :data:`TRIAL_UNITS`, else the unit its name ends with
    (``*_hz`` → ``"Hz"``, ``*_ms`` → ``"ms"``, ``*_s`` → ``"s"``), else ``"1"`` (dimensionless)."""
    if name in TRIAL_UNITS:
        return TRIAL_UNITS[name]
    return UNIT_SUFFIXES.get(name.rsplit("_", 1)[-1].lower(), "1") if "_" in name else "1"


def parameter_units(name: str) -> str:
    """Units of the per-neuron parameter ``name`` of ``/populations/<pop>``: ``"steps"`` for a count of
    time steps (``n_*``, e.g. the refractory period ``n_ref``), else ``"1"``: the discrete-time model's
    factors and values are dimensionless (docs/model.md)."""
    return "steps" if name.startswith("n_") else "1"


#: SONATA spike ``sorting`` attribute values.  It must be an HDF5 ENUM with an uint8 base type: libsonata
#: cannot read a string or plain integer attribute here.
SORTING = {"none": 0, "by_id": 1, "by_time": 2}

#: Root attributes written by :class:`~neuroplast.io.RunWriter` and kept current at every flush.
ATTR_TRIALS_COMPLETE = "n_trials_complete"
ATTR_ITERATIONS_COMPLETE = "n_iterations_complete"
ATTR_FINISHED = "finished"
#: Root attribute present only in a run that diverged: the one-line message (what was not finite, where,
#: at which iteration).  Such a log is never resumed or extended.
ATTR_DIVERGED = "diverged"
#: Root attribute of a run that stopped before ``training.iterations`` because its stopping criterion was
#: met (``training.stop_error``): the one-line reason.  Written with ``finished``.
ATTR_STOPPED = "stopped"

#: Per-iteration datasets of every ``/projections/<name>`` group (``in_trial_weights`` only in runs that
#: learn inside their trials, root attribute ``update_every_steps`` > 0).
ITERATION_DATASETS = ("weights", "updates", "in_trial_weights")

#: Group holding the resumable training state (``--resume``): two slots written alternately, slot
#: ``i % 2`` after iteration ``i`` (1-based count of iterations done), each with the attributes
#: :data:`ATTR_STATE_ITERATION` and :data:`ATTR_STATE_DIGEST` (sha256 over the slot's arrays).
RESUME_GROUP = "resume"
RESUME_SLOTS = ("slot0", "slot1")
ATTR_STATE_ITERATION = "iteration"
ATTR_STATE_DIGEST = "sha256"

#: Root groups ``/report_<var>`` hold the SONATA report of variable ``var`` (see :func:`report_root`); the
#: first variable traced for a population is also hard-linked at ``/<SONATA_REPORT>/<pop>``.
REPORT_PREFIX = "report_"
SONATA_REPORT = "report"

#: Link names starting with this are never part of the layout: readers ignore them.  They name datasets
#: that are being written (``grad/.partial-<estimator>``) or replaced (``grad/.replaced-<estimator>``) by
#: :func:`neuroplast.io.add_gradients`, which renames them when everything is written.
HIDDEN_PREFIX = "."
PARTIAL_PREFIX = ".partial-"
REPLACED_PREFIX = ".replaced-"

#: Chunk budget (bytes) used when choosing chunk shapes of growing datasets (small files for small runs,
#: one row per chunk for wide rows).
CHUNK_BYTES = 1 << 16

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
#: Names :func:`check_name` accepted (plain ``str``: immutable, so once valid always valid), a bounded set.
_VALID_NAMES: set[str] = set()


def sorting_dtype() -> np.dtype:
    """HDF5 enum dtype ``{none: 0, by_id: 1, by_time: 2}`` with uint8 base, as SONATA/libsonata expects.

    Returns
    -------
    numpy.dtype
        An ``uint8`` dtype carrying h5py enum metadata.
    """
    return h5py.enum_dtype(SORTING, basetype="u1")


def check_name(kind: str, name: str) -> str:
    """Validate a population/projection/estimator/variable name used as an HDF5 link name.

    Parameters
    ----------
    kind : str
        What the name is (used in the error message).
    name : str
        The name; letters, digits, ``_ . -``, not starting with a digit.

    Returns
    -------
    str
        ``name`` unchanged.

    Raises
    ------
    ValueError
        If the name would not make a plain HDF5 link name.
    """
    if type(name) is str and name in _VALID_NAMES:  # every trial and iteration repeats the same names
        return name
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"invalid {kind} name {name!r}: use letters, digits, '_', '.', '-'")
    if type(name) is str and len(_VALID_NAMES) < 4096:
        _VALID_NAMES.add(name)
    return name


def report_root(var: str) -> str:
    """Name of the root group that holds the SONATA report of variable ``var``.

    Every traced variable ``var`` of population ``pop`` lives at ``/report_<var>/<pop>`` (a complete SONATA
    report: ``data`` + ``mapping``).  The first variable traced for a population is also hard-linked at
    ``/report/<pop>``, the one place libsonata's ``SomaReportReader``/``ElementReportReader`` looks.

    Parameters
    ----------
    var : str
        Variable name, e.g. ``"v"``.

    Returns
    -------
    str
        ``"report_" + var``.
    """
    return f"{REPORT_PREFIX}{var}"


def report_var(root: str) -> str | None:
    """Variable whose report a root group holds: the inverse of :func:`report_root`.

    Parameters
    ----------
    root : str
        Name of a root group, e.g. ``"report_v"``.

    Returns
    -------
    str or None
        ``"v"`` for ``"report_v"``; ``None`` for any name that is not a ``report_<var>`` group (``"report"``,
        the libsonata hard links, included).
    """
    return root[len(REPORT_PREFIX) :] if root.startswith(REPORT_PREFIX) else None


def is_hidden(name: str) -> bool:
    """Whether a link name is outside the layout (starts with :data:`HIDDEN_PREFIX`; readers skip it)."""
    return name.startswith(HIDDEN_PREFIX)


def gradient_names(f: h5py.File) -> list[tuple[str, str]]:
    """``(projection, estimator)`` of every stored gradient, in file (name) order, hidden names left out.

    Parameters
    ----------
    f : h5py.File
        An open run log.

    Returns
    -------
    list of (str, str)
    """
    return [
        (proj, est)
        for proj, g in f["projections"].items()
        if "grad" in g
        for est in g["grad"].keys()
        if not is_hidden(est)
    ]


def per_trial_datasets(f: h5py.File) -> list[h5py.Dataset]:
    """Every dataset with one row per trial.

    Every ``/trials`` column, ``inputs/values``, the ``targets`` datasets and every gradient of
    :func:`gradient_names`, in that order.

    Parameters
    ----------
    f : h5py.File
        An open run log.

    Returns
    -------
    list of h5py.Dataset
    """
    gt, tg = f["trials"], f["targets"]
    out = [gt[c] for c in gt] + [f["inputs"]["values"]]
    out += [tg[k] for k in ("values", "labels", "mask") if k in tg]
    out += [f["projections"][proj]["grad"][est] for proj, est in gradient_names(f)]
    return out


def count_attr(f: h5py.File, name: str, default: int | None = None) -> int | None:
    """A root attribute that counts something (``n_trials_complete``, ``n_iterations_complete``).

    Parameters
    ----------
    f : h5py.File
        An open run log.
    name : str
        The attribute.
    default : int, optional
        What an absent attribute counts.

    Returns
    -------
    int or None
        The count, or ``default`` when the attribute is absent.

    Raises
    ------
    RunFileError
        One line naming the file and the attribute when it is not an integer >= 0 (a damaged log).
    """
    if name not in f.attrs:
        return default
    value = f.attrs[name]
    arr = np.asarray(value)
    if arr.shape != () or arr.dtype.kind not in "iu" or int(arr) < 0:
        shown = arr.tolist() if arr.dtype.kind in "biuf" else value
        shown = shown.decode(errors="replace") if isinstance(shown, bytes) else shown
        raise RunFileError(
            f.filename, f"damaged run log: root attribute {name} is {shown!r}; must be an integer >= 0"
        )
    return int(arr)


def complete_trials(f: h5py.File, datasets: list[h5py.Dataset] | None = None) -> int:
    """Number of complete trials: the smallest of ``n_trials_complete`` and every per-trial length (a
    damaged attribute is a :class:`RunFileError`, :func:`count_attr`).

    A writer killed in the middle of a flush leaves some per-trial datasets longer than others; only the
    rows that all of them (and the root attribute, when present) cover are complete.

    Parameters
    ----------
    f : h5py.File
        An open run log.
    datasets : list of h5py.Dataset, optional
        The result of :func:`per_trial_datasets`, if already at hand.

    Returns
    -------
    int
    """
    lengths = [d.shape[0] for d in (per_trial_datasets(f) if datasets is None else datasets)]
    n = count_attr(f, ATTR_TRIALS_COMPLETE)
    if n is not None:
        lengths.append(n)
    return int(min(lengths))


def complete_iterations(f: h5py.File) -> int:
    """Number of complete iterations: the smallest of ``n_iterations_complete`` (0 if absent) and the row
    counts of every projection's per-iteration datasets (:data:`ITERATION_DATASETS`).

    Parameters
    ----------
    f : h5py.File
        An open run log.

    Returns
    -------
    int
    """
    lengths = [count_attr(f, ATTR_ITERATIONS_COMPLETE, 0)]
    lengths += [g[k].shape[0] for g in f["projections"].values() for k in ITERATION_DATASETS if k in g]
    return int(min(lengths))


def chunk_rows(row_bytes: int, *, cap: int = 4096) -> int:
    """Number of rows per chunk so that a chunk stays near :data:`CHUNK_BYTES`.

    Parameters
    ----------
    row_bytes : int
        Size of one row along the growing axis, bytes.
    cap : int
        Upper bound on the number of rows.

    Returns
    -------
    int
        At least 1.
    """
    return int(max(1, min(cap, CHUNK_BYTES // max(1, row_bytes))))
