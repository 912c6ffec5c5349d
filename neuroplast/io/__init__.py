"""HDF5 run logs (``format = "neuroplast-run"``): :class:`RunWriter` writes, :func:`open_run` reads.

The layout (SONATA-compatible spikes and reports, per-trial inputs/targets/gradients, weights before every
update) is described in ``docs/hdf5.md`` and in :mod:`neuroplast.io.schema`.  Gradients computed after a
run are added with :func:`add_gradients` (all or nothing).  Pure h5py + numpy.

Modules: :mod:`~neuroplast.io.schema` (names and shared rules), :mod:`~neuroplast.io.checks` (argument
checks), :mod:`~neuroplast.io.layout` (creating a file), :mod:`~neuroplast.io.buffer` (trials and
iterations between flushes), :mod:`~neuroplast.io.reports` (SONATA traces), :mod:`~neuroplast.io.state`
(resume slots), :mod:`~neuroplast.io.reopen` (cutting back a killed log), :mod:`~neuroplast.io.writer`
(:class:`RunWriter`, flush order), :mod:`~neuroplast.io.reader` (:func:`open_run`, read-only),
:mod:`~neuroplast.io.validate` (the checks :func:`open_run` makes) and :mod:`~neuroplast.io.annotate`
(adding gradients to a closed log).
"""

from neuroplast.io.annotate import add_gradients, rename_gradient
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
    "add_gradients",
    "open_run",
    "read_states",
    "rename_gradient",
    "state_digest",
]
