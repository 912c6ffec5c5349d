"""Monitors of every synapse of a compiled network, whose number of synapses the program does not know.

A Brian2 ``StateMonitor`` compiles the number of elements it records into the program; the synapses of a
cpp_standalone network are read at launch (:mod:`.edges`), so a monitor of every synapse would compile
their number in again.  On a compiled network such a monitor is a ``run_regularly`` in the monitor's slot
and on its clock instead, ``v = neuroplast_record(slot, row, v)`` for each variable v
(``network/include/neuroplast_record.h``): v is unchanged, its value goes into row ``row`` — the clock's
tick — of the record, which the binary writes into the launch's results folder after the run.
:class:`SynapseRecord` reads it back where the monitor was: ``record.v`` is what ``monitor.v`` was, one
row per synapse and one column per tick, the same values bit for bit.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from neuroplast.network.headers import RECORD_HEADER, header_kwds, header_stamp

__all__ = ["RECORD", "SynapseRecord", "add_record", "read_record", "record_function"]

#: The C++ function of a record: ``RECORD(slot, row, value)`` (Brian2 appends the synapse's index).
RECORD = "neuroplast_record"


def record_function(b2: Any) -> Any:
    """The Brian2 ``Function`` of :data:`RECORD` (stateful: never moved out of the loop over synapses)."""
    fn = b2.Function(
        None,
        arg_units=[1, 1, 1],
        arg_types=["integer", "integer", "float"],
        return_unit=1,
        return_type="float",
        arg_names=["slot", "row", "value"],
        stateless=False,
        auto_vectorise=True,
    )
    fn.implementations.add_implementation(
        "cpp", header_stamp(RECORD_HEADER), name=RECORD, compiler_kwds=header_kwds(RECORD_HEADER)
    )
    return fn


class SynapseRecord:
    """The variables of a group of synapses recorded at every tick of a clock, read from a launch's results.

    Parameters
    ----------
    files : dict of str to str
        Variable name -> the record's file name in the results folder.
    folder : callable
        The results folder of the last launch (read when a variable is asked for).

    Attributes
    ----------
    <variable> : numpy.ndarray
        (synapses, ticks): the values at every tick, as ``StateMonitor.<variable>`` holds them.
    """

    def __init__(self, files: dict[str, str], folder: Callable[[], Path]) -> None:
        self._files, self._folder = dict(files), folder

    def __getattr__(self, name: str) -> np.ndarray:
        files = self.__dict__.get("_files", {})
        if name not in files:
            raise AttributeError(name)
        return read_record(self._folder() / files[name])


def read_record(path: Path) -> np.ndarray:
    """The record in file ``path`` (int64 rows, width, then rows × width float64), (width, rows), read-only.

    Mapped, not copied: the binary writes each launch's record as a new file renamed onto ``path``
    (``neuroplast_record_write``), so the values of an earlier launch stay what they were while anything
    holds them (a launch's records are 16 bytes per synapse and iteration: reading them was a copy of them
    all, ≈ 1/3 of Python's part of an iteration at 10⁶ synapses).

    Raises
    ------
    ValueError
        The file is not a whole record (shorter than its header says).
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 16 or size % 8:
            raise ValueError(f"{path}: not a record ({size} bytes)")
        data = np.frombuffer(mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ), dtype=np.float64)
    rows, width = (int(v) for v in data[:2].view(np.int64))
    if rows < 0 or width < 0 or data.size - 2 != rows * width:
        raise ValueError(f"{path}: a record of {rows} × {width} values in {size} bytes")
    return data[2:].reshape(rows, width).T


def add_record(
    b2: Any,
    syn: Any,
    variables: list[str],
    *,
    slot: int,
    rows: int,
    period: str,
    folder: Callable[[], Path],
    name: str,
    **kw: Any,
) -> SynapseRecord:
    """Record ``variables`` of every synapse of ``syn`` as ``StateMonitor(syn, variables, record=True,
    name=name, **kw)`` would (``kw``: its ``dt``, ``when`` and ``order``), in the C++ records ``slot``,
    ``slot + 1``, … (one per variable).

    Parameters
    ----------
    b2 : module
        brian2, its device the network's compiled device.
    syn : brian2.Synapses
        The synapses.
    variables : list of str
        Their variables to record.
    slot : int
        The first record's number.
    rows : int
        The most ticks of the clock in a launch (the rows reserved).
    period : str
        The name of the clock's period in the run's namespace (the tick of time t is round(t / period)).
    folder : callable
        The results folder of the last launch.
    name : str
        The name of the ``run_regularly`` (the monitor's, so its place among the objects of its slot).

    Returns
    -------
    SynapseRecord
        Where the monitor's values are read after a launch.
    """
    device = b2.get_device()
    count = device.get_array_name(syn.variables["N"], access_data=False)
    tick = f"int(t / {period} + 0.5)"
    lines, files = [], {}
    for k, var in enumerate(variables):
        files[var] = f"record_{name}_{var}.f64"
        lines.append(f"{var} = {RECORD}({slot + k}, {tick}, {var})")
        path = f'(brian::results_dir + "{files[var]}").c_str()'
        reserve = f"neuroplast_record_reserve({slot + k}, {rows}L, brian::{count}[0], {path});"
        device.insert_code("before_network_run", reserve)
        device.insert_code("after_network_run", f"neuroplast_record_write({slot + k}, {path});")
    syn.run_regularly("\n".join(lines), name=name, **kw)
    return SynapseRecord(files, folder)
