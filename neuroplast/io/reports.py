"""SONATA reports (per-step traces) of a run log: buffering, writing, and cutting back on resume.

Every traced variable ``var`` of population ``pop`` is a complete SONATA report at ``/report_<var>/<pop>``
(``data`` + ``mapping``); the first variable traced for ``pop`` is also hard-linked at ``/report/<pop>``, the
one place libsonata reads.  See ``docs/hdf5.md`` ("Reports").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from neuroplast.io.checks import check_trace
from neuroplast.io.layout import append_rows, growing
from neuroplast.io.schema import SONATA_REPORT, report_root, report_var

__all__ = ["TraceBuffer", "Reports", "TraceMixin"]


@dataclass
class TraceBuffer:
    """One report ``(pop, var)``: its fixed columns, where it is in time, and the rows not yet written."""

    pop: str
    var: str
    node_ids: np.ndarray
    units: str
    start_step: int
    next_step: int
    rows_written: int = 0
    buffer: list[np.ndarray] = field(default_factory=list)


class Reports:
    """The reports of one writer.

    Parameters
    ----------
    dt_ms : float
        Time step, ms (``mapping/time`` is in ms).
    """

    def __init__(self, dt_ms: float) -> None:
        self.dt_ms = dt_ms
        self.traces: dict[tuple[str, str], TraceBuffer] = {}
        self.first_var: dict[str, str] = {}  # pop -> variable linked at /report/<pop>

    def add(
        self, pop: str, var: str, arr: np.ndarray, ids: np.ndarray, start_step: int | None, units: str
    ) -> None:
        """Buffer rows of ``(pop, var)`` (checked by :func:`neuroplast.io.checks.check_trace`).

        The first call fixes the node ids, the units and the start (default step 0); later calls must continue
        right where the previous one ended.
        """
        key = (pop, var)
        tr = self.traces.get(key)
        if tr is None:
            s0 = 0 if start_step is None else int(start_step)
            if s0 < 0:
                raise ValueError("start_step must be >= 0")
            tr = TraceBuffer(pop, var, ids, str(units), s0, s0)
            self.traces[key] = tr
            self.first_var.setdefault(pop, var)
        else:
            if not np.array_equal(ids, tr.node_ids):
                raise ValueError(f"trace {pop}/{var}: node_ids differ from the first call")
            if start_step is not None and int(start_step) != tr.next_step:
                raise ValueError(
                    f"trace {pop}/{var}: start_step {start_step} is not contiguous (expected {tr.next_step})"
                )
            if str(units) != tr.units:
                raise ValueError(f"trace {pop}/{var}: units {units!r} differ from {tr.units!r}")
        tr.buffer.append(arr)
        tr.next_step += arr.shape[0]

    def nbytes(self) -> int:
        """Bytes of the buffered rows (what :meth:`flush` appends, besides metadata)."""
        return sum(a.nbytes for tr in self.traces.values() for a in tr.buffer)

    def n_datasets(self) -> int:
        """Datasets :meth:`flush` writes: each report's data and ``mapping/time`` (a new report: its mapping
        too, about the size of its node ids, counted as datasets)."""
        return sum(2 + 6 * (tr.rows_written == 0) for tr in self.traces.values() if tr.buffer)

    def flush(self, f: h5py.File) -> None:
        """Append every buffered row (creating a report on its first rows) and update ``mapping/time``."""
        for (pop, var), tr in self.traces.items():
            if not tr.buffer:
                continue
            root = report_root(var)
            gpath = f"{root}/{pop}"
            if gpath not in f:
                # created inline: HDF5 places a chunk when its dataset's handle closes, so these handles'
                # lifetimes (to the next report created) decide the byte layout of the file
                g = f.require_group(root).create_group(pop)
                g.attrs["variable"] = var
                n = tr.node_ids.size
                d = growing(g, "data", (n,), np.float32)
                d.attrs["units"] = tr.units
                m = g.create_group("mapping")
                m.create_dataset("node_ids", data=tr.node_ids, dtype=np.uint64)
                m.create_dataset("index_pointers", data=np.arange(n + 1, dtype=np.uint64))
                m["index_pointer"] = m["index_pointers"]  # hard link, for bmtk
                m.create_dataset("element_ids", data=np.zeros(n, dtype=np.uint32))
                m.create_dataset("element_pos", data=np.full(n, 0.5, dtype=np.float32))
                t = m.create_dataset("time", data=np.array([tr.start_step * self.dt_ms] * 2 + [self.dt_ms]))
                t.attrs["units"] = "ms"
                if self.first_var.get(pop) == var and f"{SONATA_REPORT}/{pop}" not in f:
                    f.require_group(SONATA_REPORT)[pop] = g  # hard link: the libsonata-readable copy
            g = f[gpath]
            block = np.concatenate(tr.buffer, axis=0)
            append_rows(g["data"], block)
            tr.rows_written += block.shape[0]
            tr.buffer.clear()
            g["mapping/time"][1] = (tr.start_step + tr.rows_written) * self.dt_ms

    @classmethod
    def cut_back(cls, f: h5py.File, end_step: int, dt_ms: float) -> Reports:
        """Shrink every stored report to the steps before ``end_step``; return them, ready to continue.

        Parameters
        ----------
        f : h5py.File
            The run log, open for writing.
        end_step : int
            First global step after the last trial kept.
        dt_ms : float
            Time step, ms.

        Returns
        -------
        Reports
            With one :class:`TraceBuffer` per stored report (nothing buffered) and the variables linked at
            ``/report/<pop>``.
        """
        reports = cls(dt_ms)
        for root in [k for k in f.keys() if report_var(k) is not None]:
            var = str(report_var(root))
            for pop, g in f[root].items():
                t0, _, dt = (float(v) for v in g["mapping/time"][()])
                start = int(round(t0 / dt_ms))
                rows = max(0, min(g["data"].shape[0], end_step - start))
                g["data"].resize((rows,) + g["data"].shape[1:])
                g["mapping/time"][1] = (start + rows) * dt_ms
                node_ids = np.asarray(g["mapping/node_ids"][()], np.uint64)
                units = str(g["data"].attrs.get("units", "1"))
                reports.traces[(pop, var)] = TraceBuffer(pop, var, node_ids, units, start, start + rows, rows)
        rep = f.get(SONATA_REPORT)
        if isinstance(rep, h5py.Group):
            for pop, g in rep.items():
                var = g.attrs.get("variable")
                if var is not None:
                    reports.first_var[pop] = var.decode() if isinstance(var, bytes) else str(var)
        for pop, var in reports.traces:
            reports.first_var.setdefault(pop, var)
        return reports


class TraceMixin:
    """:meth:`add_trace` of :class:`~neuroplast.io.RunWriter` (the reports are flushed by its ``flush``)."""

    _reports: Reports
    population_sizes: Mapping[str, int]

    if TYPE_CHECKING:  # RunWriter's

        def _require_open(self) -> h5py.File: ...

    def add_trace(
        self,
        pop: str,
        var: str,
        data: Any,
        node_ids: Any,
        *,
        start_step: int | None = None,
        units: str = "1",
    ) -> None:
        """Buffer per-step traces of one variable as a SONATA report.

        Successive calls for the same ``(pop, var)`` must be contiguous in time; together they form one
        report with ``mapping/time = [start, stop, dt]`` in ms.

        Parameters
        ----------
        pop : str
            Population name.
        var : str
            Variable name (``v``, ``a``, ``z`` ...).  The first variable traced for ``pop`` is readable
            by libsonata at ``/report/<pop>``; every variable is at ``/report_<var>/<pop>``.
        data : array_like, shape (T, n_elements)
            Values at ``T`` consecutive steps, stored as float32.
        node_ids : array_like, shape (n_elements,)
            Node id of each column (unique: one element per node).
        start_step : int, optional
            Global step of the first row; default: right after the previous call for ``(pop, var)``, or 0.
        units : str, optional
            Units of the values (the ``units`` attribute of ``data``), default ``"1"`` (dimensionless).
        """
        self._require_open()
        arr, ids = check_trace(pop, var, data, node_ids, self.population_sizes)
        self._reports.add(pop, var, arr, ids, start_step, units)
