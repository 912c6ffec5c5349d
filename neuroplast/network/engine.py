"""neuroplast's Brian2 device: a :class:`~brian2.devices.cpp_standalone.device.CPPStandaloneDevice` subclass.

Brian2 is extended here the way brian2cuda extends it: a device class registered in Brian2's device table
(``brian2.devices.device.all_devices``) under :data:`DEVICE_NAME` and selected with ``set_device``.  The
class owns what neuroplast needs beyond the stock C++ standalone device:

* **the clock order** — Brian2 keeps the clocks of a project in a set and writes one initialisation line per
  clock into ``main.cpp`` in set order (the objects' addresses): with several clocks (in-trial updates,
  trial boundaries of a chunk) every process wrote a different ``main.cpp`` and relinked (≈ 2–4 s of every
  warm start).  Here the clocks are a set iterated by name, and the lines :meth:`network_run` queues for
  them are sorted by clock name;
* **the headers of the code inserted into** ``main.cpp`` (the input table's loader, the record of ψ, the
  gradients computed after the run): the device's own ``headers`` and ``include_dirs``.  The functions that
  code objects call declare their header themselves (``compiler_kwds`` of their implementation,
  :func:`.headers.header_kwds`);
* **the launch** (:meth:`launch`): run arguments as Brian2's documented ``name=value`` strings, array values
  written to files of the launch's results folder (see :meth:`launch` for why not Brian2's ``run_args``
  dictionary), and **the run's duration chosen per launch**: the compiled ``net.run(D)`` becomes
  ``net.run(neuroplast_run_duration(<results>/duration, D))`` (``network/include/neuroplast_launch.h``), so
  that a network built for up to K trials per launch runs fewer without being compiled again;
* **variables written by code Brian2 does not know of** (:meth:`forget_cached`);
* **the run loop's clock read once per run** (:func:`clock_once_per_run`): brian2 2.9's ``Network::run``
  reads the process's CPU time (``std::clock()``, a system call) after every time step, only to report the
  run's duration at its end (≈ 6 % of a small network's binary: N = 100; brian2 ≥ 2.10 reads it
  per step only for a progress report or a maximum run time);
* **the compile** (:meth:`compile_source`): ``make`` runs in a process group that is killed when the Python
  process ends in any way, ``kill -9`` included (:func:`.processes.run_in_group`), so that no compiler
  outlives its run.

All but the headers and the run's duration live in :class:`NeuroplastDevice`, a mixin that
:mod:`neuroplast.network.cuda` also puts in front of brian2cuda's ``CUDAStandaloneDevice``.

Workarounds that remain, and the upstream change that would remove each, are listed in
docs/architecture.md ("Brian2: what neuroplast relies on").
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import brian2
import numpy as np
from brian2.devices.cpp_standalone.device import CPPStandaloneDevice
from brian2.devices.device import all_devices
from brian2.utils.filetools import in_directory
from brian2.utils.logger import std_silent

from neuroplast.network.headers import HEADERS, INCLUDE_DIR
from neuroplast.network.processes import run_in_group

__all__ = [
    "DEVICE_NAME",
    "ENGINE_VERSION",
    "NeuroplastDevice",
    "NeuroplastStandaloneDevice",
    "RunArgument",
]

#: The name of neuroplast's device in Brian2's device table.
DEVICE_NAME = "neuroplast_standalone"
#: Changes whenever what the device generates changes (part of the compiled-network cache key).
ENGINE_VERSION = 8
#: The file of a launch's results folder that holds its duration (s), when shorter than the compiled one.
DURATION_FILE = "duration"


class _ByName(set):
    """A set of clocks iterated by name (Brian2 iterates its set of clocks to write ``main.cpp``)."""

    def __iter__(self):
        return iter(sorted(set.__iter__(self), key=lambda clock: clock.name))


def _is_clock_line(item: tuple) -> bool:
    kind, args = item
    return kind == "set_by_single_value" and str(args[0]).endswith(("clock_timestep", "clock_t"))


def _clock_lines_by_name(queue: list) -> list:
    """``queue`` with each run of consecutive clock resets (``<clock>_timestep`` and ``<clock>_t`` set to a
    single value; one pair per clock, in set order) sorted by clock name (stable: timestep, then t)."""
    out: list = []
    run: list = []
    for item in [*queue, None]:
        if item is not None and _is_clock_line(item):
            run.append(item)
            continue
        out += sorted(run, key=lambda it: str(it[1][0]).rsplit("clock_", 1)[0])
        run = []
        if item is not None:
            out.append(item)
    return out


class RunArgument:
    """What a launch sets in the binary: ``<owner>.<variable>`` (or ``<TimedArray>.values``) with its size.

    Parameters
    ----------
    name : str
        The name the binary knows, e.g. ``"syn_input.w"`` or ``"Y_target.values"``.
    dtype : numpy.dtype
        The type of the variable's values.
    shape : tuple of int, or None
        The shape of an array value (``None``: any 1-d array, e.g. a synaptic variable whose count the
        device learns only when the project runs).
    """

    __slots__ = ("name", "dtype", "shape")

    def __init__(self, name: str, dtype: Any, shape: tuple[int, ...] | None) -> None:
        self.name, self.dtype, self.shape = name, np.dtype(dtype), shape

    @classmethod
    def of(cls, key: Any, n_synapses: Mapping[str, int]) -> RunArgument:
        """The argument of a ``VariableView`` (a group's variable) or a ``TimedArray``.

        ``n_synapses`` gives the synapse count of each ``Synapses`` object by name: Brian2 knows it only
        after the project has run once.
        """
        if isinstance(key, brian2.TimedArray):
            return cls(f"{key.name}.values", key.values.dtype, tuple(key.values.shape))
        variable = key.variable
        size = n_synapses.get(key.group_name) if variable.dynamic else int(variable.size)
        return cls(f"{key.group_name}.{key.name}", key.dtype, None if size is None else (size,))


class NeuroplastDevice:
    """What every standalone device of neuroplast adds to its Brian2 device class (a mixin, first among the
    bases: ``class D(NeuroplastDevice, CPPStandaloneDevice)``): clocks iterated by name, monitors read
    back from launches of different lengths, ``make`` in a process group, and the launch with its run
    arguments written to the results folder.  Subclasses: :class:`NeuroplastStandaloneDevice` here, and
    :class:`~neuroplast.network.cuda.NeuroplastCUDADevice` (brian2cuda's ``CUDAStandaloneDevice``)."""

    def __init__(self) -> None:
        super().__init__()
        self.clocks = _ByName()
        #: Variables whose values a launch need not write back (:meth:`leave_unwritten`).
        self.unwritten: list[Any] = []
        #: Those of them whose write the generated code leaves out (reading one after a launch raises).
        self.not_written: set[Any] = set()

    def leave_unwritten(self, variables: Iterable[Any]) -> None:
        """Tell the device that nothing reads these Brian2 variables back after a launch.

        Brian2 writes every array of the project into the results folder after every run; at 10⁶
        synapses the per-synapse arrays that neuroplast never reads (the synapses' source and target ids,
        which Python has from the edge tables, and on a chunked network the weights and optimizer state
        that NumPy replicates) were ≈ 40 MB per launch.  A device that can leave their writes out of the
        generated code does (:func:`without_array_writes`); reading such a variable after a launch then
        raises a ``RuntimeError`` naming it instead of returning a stale file's values.  Call before the
        project is built.
        """
        self.unwritten.extend(variables)

    def configure(self, compile: bool) -> None:
        """Set the device's own preferences for the next project (``compile``: whether it will be compiled,
        or only its code generated).  Nothing here; a subclass that needs it overrides it."""

    def cache_parts(self) -> dict[str, Any]:
        """What determines the compiled program beyond Brian2's generated code and the C++ flags (part of
        the compiled-network cache key, :meth:`.launch.Launch._cache_parts`): nothing here."""
        return {}

    def get_value(self, var, access_data: bool = True):  # noqa: D102 - Brian2's
        if self.has_been_run and self.array_cache.get(var, None) is None and var in self.not_written:
            owner = getattr(var.owner, "name", "?")
            raise RuntimeError(
                f"{owner}.{var.name}: neuroplast's launches of this network do not write it back "
                "(NeuroplastDevice.leave_unwritten)"
            )
        # A monitor's 2-d array grows along its first (time) axis, and its length now changes from launch
        # to launch (the duration is chosen at run time): Brian2 infers the shape from the size it last
        # read unless one axis is 0, so mark the time axis as the one to infer.
        size = getattr(var, "size", None)
        if (
            self.has_been_run
            and self.array_cache.get(var, None) is None
            and isinstance(size, tuple)
            and len(size) == 2
            and size[0] > 0
            and size[1] > 0
        ):
            var.size = (0, size[1])
        return super().get_value(var, access_data)

    def compile_source(self, directory, compiler, debug, clean):  # noqa: D102 - Brian2's
        # Brian2's own compile on POSIX, its make run in a process group that dies with this process
        if compiler == "msvc":
            return super().compile_source(directory, compiler, debug, clean)
        prefs = brian2.prefs.devices.cpp_standalone
        with in_directory(directory), std_silent(debug):
            if clean:
                start = time.time()
                run_in_group("make clean >/dev/null 2>&1")
                self.timers["compile"]["clean"] = time.time() - start
            start = time.time()
            status = run_in_group(f"{prefs.make_cmd_unix} {' '.join(prefs.extra_make_args_unix)}")
            self.timers["compile"]["make"] = time.time() - start
        if status != 0:
            message = f"Project compilation failed (error code: {status})."
            if not clean:
                message += ' Consider running with "clean=True" to force a complete rebuild.'
            raise RuntimeError(message)
        return None

    def forget_cached(self, variables: Iterable[Any]) -> None:
        """Read these variables from the results files again after a run: code that Brian2 does not know of
        (the gradients computed after the run) writes them."""
        for var in variables:
            self.array_cache[var] = None

    def write_files(self, results: str, files: Mapping[str, np.ndarray]) -> Path:
        """Write raw files that the binary reads itself (the input table, the synapse tables) into the
        results folder ``results`` (relative to the project folder; made if missing), and return its path."""
        folder = Path(self.project_dir) / results
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            write_in_place(folder / name, data)
        return folder

    def launch(
        self,
        results: str,
        values: Mapping[RunArgument, Any],
        files: Mapping[str, np.ndarray] | None = None,
        duration: float | None = None,
    ) -> None:
        """Run the built binary once with these values.

        Parameters
        ----------
        results : str
            The results folder, relative to the project folder (one per process).
        values : mapping of RunArgument to array_like
            A single finite value goes on the command line as ``repr`` (exact for doubles), as Brian2 does;
            an array goes to a file of the results folder, written over at every launch
            (:func:`write_in_place`) and removed with the folder.  (Brian2's ``run_args`` dictionary names
            each array's file after an MD5 hash of its content in the project's shared ``static_arrays``:
            ≈ 2 ms of hashing per sine iteration, and every launch left its files in the shared cache for
            good.)
        files : mapping of str to numpy.ndarray, optional
            Raw byte files the binary reads itself (the input table), by file name in the results folder.
        duration : float, optional
            The time to simulate (s), at most the compiled duration (default: the compiled duration).

        Raises
        ------
        ValueError
            An array whose shape does not match its variable (the binary would only print a warning).
        """
        folder = self.write_files(results, files or {})
        if duration is None:
            (folder / DURATION_FILE).unlink(missing_ok=True)
        else:
            (folder / DURATION_FILE).write_text(f"{float(duration)!r}\n")
        args = []
        for arg, value in values.items():
            ar = np.ascontiguousarray(value, dtype=arg.dtype)
            if ar.size == 1 and np.isfinite(ar).all():
                args.append(f"{arg.name}={ar.item()!r}")
                continue
            if (arg.shape is not None and ar.shape != arg.shape) or (arg.shape is None and ar.ndim != 1):
                raise ValueError(f"run argument {arg.name}: shape {ar.shape}, expected {arg.shape or '1-d'}")
            path = folder / f"arg_{arg.name}.dat"
            write_in_place(path, ar)
            args.append(f"{arg.name}={path}")
        self.run(results_directory=results, run_args=args, with_output=False)


def write_in_place(path: Path, data: np.ndarray) -> None:
    """Make ``data``'s bytes (C order) the whole content of file ``path``, written into the file's own pages.

    A launch's files (weights, optimizer state, the input table) have the same names and, launch after
    launch, the same sizes.  ``ndarray.tofile`` truncates the file first: the kernel frees its cached pages
    and allocates and zeroes new ones for every write (≈ 12 ms per 10 MB on the 2-core VM of
    docs/benchmarks.md, against ≈ 0.8 ms to overwrite them: at 10⁶ synapses ≈ 45 ms of every launch).
    Here the bytes overwrite the file from its start and the file is cut (or grown) to their length
    afterwards only where it differs.  Off POSIX (no ``os.pwrite``): ``tofile``.

    Parameters
    ----------
    path : pathlib.Path
        The file (made if missing).
    data : numpy.ndarray
        The values; written in their own dtype, C order, no header.
    """
    flat = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    if not hasattr(os, "pwrite"):
        flat.tofile(path)
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        view, done = memoryview(flat), 0
        while done < flat.size:  # one call writes at most ≈ 2 GB on Linux
            done += os.pwrite(fd, view[done:], done)
        if os.fstat(fd).st_size != flat.size:
            os.ftruncate(fd, flat.size)
    finally:
        os.close(fd)


#: Brian2's per-step read of the CPU time in ``Network::run`` (the template without OpenMP), as generated.
_STEP_CLOCK = re.compile(
    r"\n[ \t]*current = std::clock\(\);\n[ \t]*elapsed_realtime = \(double\)\(current - start\)/[^\n]*;\n"
)
#: The (indented) line after Brian2's run loop, where the read goes instead.
_AFTER_LOOP = re.compile(r"\n([ \t]+)Network::_globally_running = false;\n")


def clock_once_per_run(network_cpp: str) -> str:
    """Brian2's ``network.cpp`` with the run loop's per-step ``std::clock()`` read moved after the loop.

    The loop reads the CPU time after every step to give ``elapsed_realtime`` its value at the end (the
    run's duration that Brian2 reports); only a run with a maximum wall time (Brian2's
    ``maximum_run_time``, which neuroplast never sets) compares it step by step, and its source is left as
    it is, as is a source whose loop does not read the clock as brian2 2.9 does (brian2 ≥ 2.10 reads it per
    step only for a report or a maximum run time; OpenMP's ``omp_get_wtime``).  What the binary simulates
    is unchanged."""
    found, after = _STEP_CLOCK.findall(network_cpp), list(_AFTER_LOOP.finditer(network_cpp))
    if len(found) != 1 or len(after) != 1 or "elapsed_realtime>" in network_cpp:
        return network_cpp
    read, end = found[0], after[0]
    if network_cpp.index(read) > end.start():  # not inside the loop that ends there
        return network_cpp
    lines = "".join(f"{end.group(1)}{line.strip()}\n" for line in read.strip().splitlines())
    moved = network_cpp[: end.end()] + lines + network_cpp[end.end() :]
    return moved.replace(read, "\n", 1)


#: The declaration of the network's set of clocks and of this step's clocks (``network.h``; the clock class
#: is ``Clock`` in brian2 2.9, ``BaseClock`` from 2.10).
_CLOCK_SETS = re.compile(r"std::set<(\w+)\*> clocks, curclocks;")


def current_clocks_in_a_vector(network_cpp: str, network_h: str) -> tuple[str, str]:
    """Brian2's ``network.cpp`` and ``network.h`` with this step's clocks (``curclocks``) in a vector
    instead of a ``std::set``.

    ``Network::next_clocks`` empties and refills the set at every time step (a node freed and one allocated
    per clock of the step) and the run loop looks every object's clock up in it: ≈ 5 % of a 100-neuron
    binary.  A vector keeps its memory across steps; it is filled in the same order from the set of all
    clocks (so it holds each clock once, in the set's order) and searched linearly (a network has a handful
    of clocks).  Which objects run at a step and the clocks' ticks are unchanged.  Both files are changed,
    or — a Brian2 whose source differs from what is replaced here — neither.
    """
    decl = _CLOCK_SETS.findall(network_h)
    if len(decl) != 1:
        return network_cpp, network_h
    clock = decl[0]
    swaps = {
        "curclocks.find(obj_clock) != curclocks.end()": (
            "std::find(curclocks.begin(), curclocks.end(), obj_clock) != curclocks.end()"
        ),
        f"for(std::set<{clock}*>::iterator i=curclocks.begin();": (
            f"for(std::vector<{clock}*>::iterator i=curclocks.begin();"
        ),
        "curclocks.insert(clock);": "curclocks.push_back(clock);",
        '#include "network.h"\n': '#include "network.h"\n#include <algorithm>\n',
    }
    if any(network_cpp.count(old) != 1 for old in swaps) or network_cpp.count("curclocks") != 6:
        return network_cpp, network_h
    for old, new in swaps.items():
        network_cpp = network_cpp.replace(old, new)
    network_h = _CLOCK_SETS.sub(
        f"std::set<{clock}*> clocks;\n    std::vector<{clock}*> curclocks;", network_h
    )
    return network_cpp, network_h


def without_array_writes(objects_cpp: str, names: Iterable[str]) -> tuple[str, set[str]]:
    """Brian2's ``objects.cpp`` without the writes of the arrays ``names`` into the results folder after the
    run (``_write_arrays``), and the names whose write was found and removed.

    Brian2 writes every array of the project after every run, each as one block: ``ofstream
    outfile_<name>;`` … ``"Error writing output file for <name>."`` … ``}``.  A name whose block is not
    found as exactly that (another Brian2's template) keeps its write: the launch only writes more.
    """
    removed: set[str] = set()
    for name in names:
        start = objects_cpp.find(f"\n    ofstream outfile_{name};\n")
        end_text = f'std::cout << "Error writing output file for {name}." << endl;\n    }}\n'
        end = objects_cpp.find(end_text, start)
        if start < 0 or end < 0 or objects_cpp.count(f"ofstream outfile_{name};") != 1:
            continue
        block = objects_cpp[start + 1 : end]
        if block.count("ofstream ") != 1:  # never more than this array's own block
            continue
        objects_cpp = objects_cpp[: start + 1] + objects_cpp[end + len(end_text) :]
        removed.add(name)
    return objects_cpp, removed


class _SourceWriter:
    """Brian2's source writer, passing ``network.cpp`` through :func:`clock_once_per_run`, both network
    files through :func:`current_clocks_in_a_vector` and ``objects.cpp`` through :func:`without_array_writes`
    (the arrays the device was told are not read back, :meth:`NeuroplastDevice.leave_unwritten`)."""

    def __init__(self, writer: Any, device: NeuroplastDevice) -> None:
        self._writer, self._device = writer, device

    def write(self, filename: str, contents: Any) -> None:
        if filename == "network.*":
            cpp, h = current_clocks_in_a_vector(clock_once_per_run(contents.cpp_file), contents.h_file)
            self._writer.write("network.cpp", cpp)
            self._writer.write("network.h", h)
            return
        if filename == "objects.*":
            device = self._device
            names = {device.get_array_name(var, access_data=False): var for var in device.unwritten}
            cpp, removed = without_array_writes(contents.cpp_file, sorted(names))
            device.not_written = {names[name] for name in removed}
            self._writer.write("objects.cpp", cpp)
            self._writer.write("objects.h", contents.h_file)
            return
        self._writer.write(filename, contents)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


class NeuroplastStandaloneDevice(NeuroplastDevice, CPPStandaloneDevice):
    """Brian2's C++ standalone device with neuroplast's clock order, headers, launches and the run's
    duration chosen per launch."""

    #: Headers of the code that neuroplast inserts into ``main.cpp`` (:meth:`insert_code`).
    MAIN_HEADERS = HEADERS

    def __init__(self) -> None:
        super().__init__()
        self.headers = [f'"{name}"' for name in self.MAIN_HEADERS]
        self.include_dirs = [str(INCLUDE_DIR)]

    def generate_network_source(self, writer, compiler):  # noqa: D102 - Brian2's
        super().generate_network_source(_SourceWriter(writer, self), compiler)

    def generate_objects_source(self, writer, *args, **kwds):  # noqa: D102 - Brian2's
        super().generate_objects_source(_SourceWriter(writer, self), *args, **kwds)

    def network_run(self, net, duration, *args, level: int = 0, **kwds):  # noqa: D102 - Brian2's
        start = len(self.main_queue)
        super().network_run(net, duration, *args, level=level + 1, **kwds)
        queue = _clock_lines_by_name(self.main_queue[start:])
        self.main_queue[start:] = [_run_time_duration(item, net.name) for item in queue]


def _run_time_duration(item: tuple, net_name: str) -> tuple:
    """A ``run_network`` item of the main queue with its run's duration read at launch (else unchanged)."""
    kind, args = item
    if kind != "run_network":
        return item
    net, lines = args
    call = f"{net_name}.run("
    new = []
    for line in lines:
        if line.startswith(call):
            compiled, rest = line[len(call) :].split(",", 1)
            path = f'(brian::results_dir + "{DURATION_FILE}").c_str()'
            line = f"{call}neuroplast_run_duration({path}, {compiled}),{rest}"
        new.append(line)
    if new == list(lines):  # a Brian2 that writes its run call differently: fail, never run too long
        raise RuntimeError(
            f"neuroplast's device found no '{call}...' line in Brian2's main.cpp queue (brian2 "
            f"{brian2.__version__}): the launch duration cannot be chosen at run time"
        )
    return kind, (net, new)


def register() -> None:
    """Put neuroplast's device into Brian2's device table (once; ``set_device(DEVICE_NAME)`` selects it)."""
    if not isinstance(all_devices.get(DEVICE_NAME), NeuroplastStandaloneDevice):
        all_devices[DEVICE_NAME] = NeuroplastStandaloneDevice()


register()
