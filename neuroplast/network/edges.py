"""The synapses of a cpp_standalone network as data of the launch, not of the compiled program.

Brian2's ``Synapses.connect(i=..., j=...)`` stores its index arrays as static arrays of the standalone
project, their sizes constants of the generated code: every new connectivity — a new seed of a sparse
network — was a new program, compiled again.  neuroplast's compiled networks connect each synaptic
projection with a generator expression instead (:meth:`EdgeTable.generator`) that reads a table from a file
of the launch's results folder (:meth:`EdgeTable.data`, read by ``network/include/neuroplast_edges.h``
before any synapse is made): the program holds the table's number only, and a run of another seed reuses
the build (:mod:`.cache` keys on :meth:`EdgeTable.key`, never on the edges).

A table lists the synapses grouped by their *outer* neuron — the source (``"pre"``) or the target
(``"post"``), the one the generator iterates over in increasing order — each group in the order Brian2's
own ``connect(i=..., j=...)`` would create them.  So Brian2's synapse order (:meth:`.assembly.Assembly.
_order_synapses`; the log's edge order is :mod:`neuroplast.model.connectivity`'s) is the same bit for bit,
and so is everything computed over it.  The runtime device keeps ``connect(i=..., j=...)``: nothing is
compiled ahead there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from neuroplast.network.headers import EDGES_HEADER, header_kwds, header_stamp

__all__ = ["COUNT", "MOST", "OTHER", "EdgeTable", "edge_functions", "edge_table"]

#: The C++ function giving the number of synapses of an outer neuron: ``COUNT(table, row)``.
COUNT = "neuroplast_edge_count"
#: The C++ function giving the other end of a row's k-th synapse: ``OTHER(table, row, k)``.
OTHER = "neuroplast_edge_other"
#: The C++ function giving the largest number of synapses of a row: ``MOST(table)``.
MOST = "neuroplast_edge_max"
#: The generator's index of the inner neuron, given the outer side.
_OUTER = {"pre": "i", "post": "j"}


@dataclass(frozen=True)
class EdgeTable:
    """The synapses of one Brian2 ``Synapses`` object (every copy), grouped by the outer neuron.

    Attributes
    ----------
    index : int
        The table's number in the program (the first argument of :data:`COUNT` and :data:`OTHER`).
    name : str
        The ``Synapses`` object's name (the table's file is ``edges_<name>.i32``).
    outer : {"pre", "post"}
        Which end the synapses are grouped by (and in increasing order of).
    start : numpy.ndarray of int32
        ``rows + 1`` offsets: row r's synapses are ``other[start[r]:start[r + 1]]``.
    other : numpy.ndarray of int32
        The inner end of every synapse, in Brian2's synapse order.
    n_other : int
        The size of the inner group (every value of ``other`` lies below it).
    """

    index: int
    name: str
    outer: str
    start: np.ndarray
    other: np.ndarray
    n_other: int

    @property
    def rows(self) -> int:
        """The size of the outer group."""
        return int(self.start.size - 1)

    @property
    def file(self) -> str:
        """The table's file name in a launch's results folder."""
        return f"edges_{self.name}.i32"

    def data(self) -> np.ndarray:
        """The file's content: int32 ``rows, nnz, start[rows + 1], other[nnz]`` (native byte order)."""
        head = np.array([self.rows, self.other.size], dtype=np.int32)
        return np.concatenate([head, self.start, self.other]).astype(np.int32, copy=False)

    def generator(self) -> dict[str, str]:
        """The keyword of ``Synapses.connect`` that creates this table's synapses, in its order.

        Grouped by source: ``j = OTHER(T, i, k) for k in range(COUNT(T, i))``.  Grouped by target, Brian2
        refuses a range that depends on j (it takes j for the iterator in an ``i = ...`` generator), so k
        runs to the table's largest row and the others are skipped:
        ``i = OTHER(T, j, k) for k in range(MOST(T)) if k < COUNT(T, j)``.
        """
        T, row = self.index, _OUTER[self.outer]
        if self.outer == "pre":
            return {"j": f"{OTHER}({T}, {row}, k) for k in range({COUNT}({T}, {row}))"}
        return {"i": f"{OTHER}({T}, {row}, k) for k in range({MOST}({T})) if k < {COUNT}({T}, {row})"}

    def load_code(self, results_dir: str) -> str:
        """The C++ line of ``main`` that reads the table (before the synapses are created).

        Parameters
        ----------
        results_dir : str
            The C++ expression of the results folder (a ``std::string`` ending in a separator).
        """
        path = f'({results_dir} + "{self.file}").c_str()'
        return f"neuroplast_edges_load({self.index}, {path}, {self.rows}L, {self.n_other}L);"

    def key(self) -> list:
        """What the compiled program knows of the table: its number, object, outer end and sizes."""
        return [self.index, self.name, self.outer, self.rows, self.n_other]


def edge_table(
    index: int, name: str, i: np.ndarray, j: np.ndarray, sizes: tuple[int, int], outer: str
) -> EdgeTable:
    """The :class:`EdgeTable` of synapses ``(i[s], j[s])`` (Brian2's order), grouped by ``outer``.

    Parameters
    ----------
    index : int
        The table's number.
    name : str
        The ``Synapses`` object's name.
    i, j : numpy.ndarray
        Presynaptic and postsynaptic neuron of every synapse (all copies), in the order Brian2 holds them.
    sizes : (int, int)
        The sizes of the presynaptic and postsynaptic groups (all copies).
    outer : {"pre", "post"}
        The end the synapses are grouped by.

    Raises
    ------
    ValueError
        If the synapses are not grouped by ``outer`` in increasing order (the generator could not create them
        in this order), or do not fit int32.
    """
    if outer not in _OUTER:
        raise ValueError(f"outer must be 'pre' or 'post', got {outer!r}")
    rows_of, other = (np.asarray(i), np.asarray(j)) if outer == "pre" else (np.asarray(j), np.asarray(i))
    n_rows, n_other = sizes if outer == "pre" else sizes[::-1]
    if rows_of.size and np.any(np.diff(rows_of) < 0):
        raise ValueError(f"synapses of {name!r} are not grouped by their {outer}synaptic neuron")
    if max(rows_of.size, n_rows, n_other) >= np.iinfo(np.int32).max:
        raise ValueError(f"synapses of {name!r}: more than int32 can index")
    counts = np.bincount(rows_of.astype(np.int64), minlength=n_rows)
    start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return EdgeTable(index, name, outer, start, other.astype(np.int32), int(n_other))


def edge_functions(b2: Any) -> dict[str, Any]:
    """The Brian2 ``Function`` objects of :data:`COUNT`, :data:`OTHER` and :data:`MOST` (a generator's
    namespace)."""
    functions = {}
    for name, args in ((COUNT, ["table", "row"]), (OTHER, ["table", "row", "k"]), (MOST, ["table"])):
        fn = b2.Function(
            None,
            arg_units=[1] * len(args),
            arg_types=["integer"] * len(args),
            return_unit=1,
            return_type="integer",
            arg_names=args,
        )
        fn.implementations.add_implementation(
            "cpp", header_stamp(EDGES_HEADER), name=name, compiler_kwds=header_kwds(EDGES_HEADER)
        )
        functions[name] = fn
    return functions
