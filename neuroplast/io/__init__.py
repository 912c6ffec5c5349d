"""HDF5 run logs (``format = "neuroplast-run"``): :class:`RunWriter` writes, :func:`open_run` reads.

The layout (SONATA-compatible spikes and reports, per-trial inputs/targets/gradients, weights before every
update) is described in ``docs/hdf5.md`` and in :mod:`neuroplast.io.schema`.  Pure h5py + numpy.
"""

from neuroplast.io.reader import ProjectionLog, RunLog, Trace, TrialReplay, open_run
from neuroplast.io.schema import FORMAT_VERSION, RunFileError
from neuroplast.io.state import read_states, state_digest
from neuroplast.io.writer import RunWriter

__all__ = [
    "FORMAT_VERSION",
    "ProjectionLog",
    "RunFileError",
    "RunLog",
    "RunWriter",
    "Trace",
    "TrialReplay",
    "open_run",
    "read_states",
    "state_digest",
]
