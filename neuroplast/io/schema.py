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
    "POPULATIONS",
    "PROJECTIONS",
    "BIAS_PROJECTION",
    "TRIAL_COLUMNS",
    "SORTING",
    "RunFileError",
    "sorting_dtype",
    "check_name",
    "report_root",
]

#: Value of the root attribute ``format``.
FORMAT_NAME = "neuroplast-run"
#: Integer layout version written to the root attribute ``format_version``; readers refuse newer files.
FORMAT_VERSION = 1
#: HDF5 format bounds used for every file written (see module notes).
LIBVER: tuple[str, str] = ("earliest", "v110")

#: Standard population names (others are accepted but these are what the network uses).
POPULATIONS = ("input", "recurrent", "readout")
#: Standard projection names; ``bias`` is the readout bias stored as a pseudo-projection (not SONATA).
PROJECTIONS = ("input", "recurrent", "output", "feedback")
BIAS_PROJECTION = "bias"

#: Mandatory per-trial columns under ``/trials`` (extra float64 columns may follow).
TRIAL_COLUMNS = ("start_step", "n_steps", "iteration", "loss")
#: dtypes of the mandatory trial columns.
TRIAL_DTYPES = {"start_step": np.int64, "n_steps": np.int64, "iteration": np.int64, "loss": np.float64}

#: SONATA spike ``sorting`` attribute values.  It must be an HDF5 ENUM with an uint8 base type: libsonata
#: cannot read a string or plain integer attribute here.
SORTING = {"none": 0, "by_id": 1, "by_time": 2}

#: Root attributes written by :class:`~neuroplast.io.RunWriter` and kept current at every flush.
ATTR_TRIALS_COMPLETE = "n_trials_complete"
ATTR_ITERATIONS_COMPLETE = "n_iterations_complete"
ATTR_FINISHED = "finished"

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

#: Chunk budget (bytes) used when choosing chunk shapes of growing datasets (small files for small runs,
#: one row per chunk for wide rows).
CHUNK_BYTES = 1 << 16

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


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
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"invalid {kind} name {name!r}: use letters, digits, '_', '.', '-'")
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
    return f"report_{var}"


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
