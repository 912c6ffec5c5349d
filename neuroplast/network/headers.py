"""The C++ headers of neuroplast's cpp_standalone networks (``network/include``), without Brian2.

:data:`HEADERS` are the input byte table (:data:`.equations.INPUT_TABLE_HEADER`), the record of ψ that
the gradients computed in the binary read (:data:`.factorized.PSI_HEADER`) and the threads they run in
(:data:`.factorized.THREADS_HEADER`), the duration of a launch
(:data:`LAUNCH_HEADER`), the synapses read at launch (:data:`EDGES_HEADER`, :mod:`.edges`) and the monitors
of every synapse (:data:`RECORD_HEADER`, :mod:`.records`).  Code objects
that call their functions declare them through ``compiler_kwds`` (:func:`header_kwds`); the code neuroplast
inserts into ``main.cpp`` gets them from the device (:class:`.engine.NeuroplastStandaloneDevice`).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from neuroplast.network.equations import INPUT_TABLE_HEADER
from neuroplast.network.factorized import PSI_HEADER, THREADS_HEADER

__all__ = [
    "EDGES_HEADER",
    "HEADERS",
    "INCLUDE_DIR",
    "LAUNCH_HEADER",
    "RECORD_HEADER",
    "header_kwds",
    "header_stamp",
    "header_text",
]

#: The folder of the headers (shipped as package data).
INCLUDE_DIR = Path(__file__).resolve().parent / "include"
#: The run duration chosen per launch (:class:`.engine.NeuroplastStandaloneDevice`).
LAUNCH_HEADER = "neuroplast_launch.h"
#: The synapses of a launch, read from its results folder (:mod:`.edges`).
EDGES_HEADER = "neuroplast_edges.h"
#: Monitors of every synapse, sized at launch (:mod:`.records`).
RECORD_HEADER = "neuroplast_record.h"
#: Every header of :data:`INCLUDE_DIR` that a network may include.
HEADERS = (INPUT_TABLE_HEADER, PSI_HEADER, THREADS_HEADER, LAUNCH_HEADER, EDGES_HEADER, RECORD_HEADER)


@functools.cache
def header_text(name: str) -> str:
    """The text of header ``name`` of :data:`INCLUDE_DIR` (read once per process)."""
    return (INCLUDE_DIR / name).read_text()


def header_stamp(name: str) -> str:
    """A C++ comment with the digest of header ``name``, for the code of the functions it defines.

    Brian2's generated makefile lists no header of a code object as a dependency, so a changed header must
    change the code of the functions that include it (upstream: header dependencies in the makefile).
    """
    digest = hashlib.sha256(header_text(name).encode()).hexdigest()[:16]
    return f"// {name} {digest}\n"


def header_kwds(name: str) -> dict[str, list[str]]:
    """``compiler_kwds`` of a function implementation that includes header ``name`` of :data:`INCLUDE_DIR`."""
    return {"headers": [f'"{name}"'], "include_dirs": [str(INCLUDE_DIR)]}
