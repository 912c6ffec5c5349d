"""The engine side of a :class:`~neuroplast.network.builder.Brian2Network`: selecting the device,
compiling (through the compiled-network cache) or storing the runtime state, and running one launch."""

from __future__ import annotations

import contextlib
import gc
from pathlib import Path
from typing import Any

import numpy as np

from neuroplast.model.params import ModelParams
from neuroplast.model.surrogates import get_surrogate
from neuroplast.network import equations as eq
from neuroplast.network.cache import (
    build_cached,
    cache_key,
    repair_cython_cache,
    results_subdir,
    running,
    standalone_root,
)
from neuroplast.network.devices import brian2_device, configure_brian2
from neuroplast.network.headers import HEADERS, header_text
from neuroplast.network.processes import compilers_in_group

#: The file of a launch's input table in its results folder (read by the binary before the run).
INPUT_TABLE_FILE = "input.u8"
#: The key of the input table among a launch's arrays (:meth:`.values.Values._trial_arrays`).
INPUT_TABLE = "input table"

_ACTIVE_STANDALONE: list = []
#: Whether this process has made a Brian2 network of neuroplast (whose objects may wait to be collected).
_MADE: list[bool] = []
_CYTHON_CHECKED: list[bool] = []


def _repair_cython_cache_once() -> None:
    """Remove, once per process, modules of the Cython cache that a killed compile left damaged
    (:func:`.cache.repair_cython_cache`): the runtime device would fail to load them."""
    if not _CYTHON_CHECKED:
        repair_cython_cache()
        _CYTHON_CHECKED.append(True)


def _raise_if_stopped(b2, net, n_steps: int, dt_ms: float) -> None:
    """Raise ``KeyboardInterrupt`` if the runtime trial just run was stopped before its end.

    Brian2 turns Ctrl-C (SIGINT) during ``Network.run`` into a stop request: the run ends after the current
    step and returns normally, with fewer steps than the trial has.  A stopped trial is never a result
    (also when the request came in its last step): the interrupt goes on to the caller instead.
    """
    done = int(round(float(np.asarray(net.t_).item()) / (dt_ms * 1e-3)))  # t_ is a view after a stop
    if b2.Network._globally_stopped or getattr(net, "_stopped", False) or done < n_steps:
        raise KeyboardInterrupt(f"trial stopped after {done} of {n_steps} steps")


class Launch:
    """Device, compile and cache, launch."""

    def _compilers(self) -> contextlib.AbstractContextManager:
        """Where Brian2 may compile in this process (the runtime device's Cython code, when objects are
        created and at a run's start): compilers that die with it (:func:`.processes.compilers_in_group`).
        An ahead-of-time device compiles in :meth:`_compile`'s ``make``, already in a group of its own."""
        return contextlib.nullcontext() if self._compiled else compilers_in_group()

    @property
    def brian2_threads(self) -> int:
        """Brian2's OpenMP threads of the simulation's step loop (``openmp_threads``; 0: none).

        :attr:`threads` where the step loop has work that Brian2's threads split: the per-synapse code of the
        online path (eligibility traces, gradients), which writes only synaptic variables.  On the factorized
        path there is none: the synaptic propagation writes neuron variables (one thread in Brian2's OpenMP
        code), and the per-neuron loops (a few thousand elements at most) are less work than the fork and
        join of every code object at every step (about 13 a step), which on a loaded machine also waits at
        each step for the thread that runs late (3–25× slower at N = 1,000–3,000, docs/benchmarks.md).  There
        the threads share the gradient computed after the run instead (:mod:`.factorized`).
        """
        return self.threads if self.threads > 1 and not self.factorized else 0

    def _start_device(self, b2) -> None:
        """Select the device; a standalone network starts a fresh project (and retires the old one)."""
        configure_brian2()
        name = brian2_device(self.device)  # registered in Brian2's device table (its package installed)
        if self._compiled:
            for old in _ACTIVE_STANDALONE:
                old._stale = True  # it builds itself again when used (its Brian2 objects go now)
                old._release_brian2_objects()
            _ACTIVE_STANDALONE.clear()
            b2.set_device(name, build_on_run=False)
            b2.device.reinit()  # one standalone project per process: start a fresh one
            b2.set_device(name, build_on_run=False)
            b2.get_device().configure(compile=self._compile_code)
            # Brian2 names code objects "<owner>_codeobject*": one of a network still in memory (a finished
            # run's, dropped above but waiting for the garbage collector) makes this network's
            # "..._codeobject_1", a project that compiles again (issue 28).  Collected, names are those of a
            # fresh process — as they are before the process's first network (≈ 60 ms saved at its start).
            if _MADE:
                gc.collect()
            # Brian2's OpenMP code splits the per-neuron loops and the synaptic code that writes only
            # synaptic variables between the threads; code writing neuron variables (v_post += w) and the
            # summed variables stay on one thread in synapse order. So every element sees the same operations
            # in the same order for any thread count (tests/training/test_batch.py, test_chunked.py).
            b2.prefs.devices.cpp_standalone.openmp_threads = self.brian2_threads
            _ACTIVE_STANDALONE.append(self)
        else:
            b2.set_device(name)
            _repair_cython_cache_once()
            b2.prefs.codegen.target = "cython"
        self._stale = False
        _MADE[:] = [True]  # runtime networks too: their objects are named like standalone ones

    def _cache_parts(self, b2) -> dict:
        """Everything that determines the generated code and data files of the standalone project.

        Values set per trial through ``run_args`` (weights, ρ, β, n_ref, inputs, targets, learning rates,
        Adam state) are not part of it, nor are the synapses (read at launch, :mod:`.edges`), so that runs
        differing only in those — the seed included — share one build.
        """
        import platform

        from neuroplast._version import __version__
        from neuroplast.network.engine import ENGINE_VERSION

        p = self.params
        return {
            "neuroplast": __version__,
            "engine": ENGINE_VERSION,
            "brian2": b2.__version__,
            "compiler_flags": list(b2.prefs.codegen.cpp.extra_compile_args_gcc),
            "platform": [platform.machine(), platform.python_version()],
            "sizes": [self.n_in, self.n_rec, self.n_out, self.n_steps],
            "dt": p.dt,
            "constants": [p.alpha, p.v_th, p.gamma, p.kappa, p.input_scale, p.readout_scale],
            "surrogate": [p.surrogate, get_surrogate(p.surrogate).brian2],
            "loss": [self.loss.name, self.loss.brian2_error, self.loss.softmax, self.loss.uses_mask],
            "options": [self.gradients, self.regularization, self.adaptation, self.record],
            **(
                {"recorded": list(self._recorded)}
                if self._recorded != self._recorded_names(True, self.gradients) and self.record
                else {}
            ),
            "events": [self.event_driven, self._split],
            "in_trial": [self.update_every, self.adam, sorted(self.rule_code.items())],
            **(
                {
                    "chunk": [self.chunk, self.chunk_optimizer, eq.CHUNK_FUNCTIONS]
                    + ([self._batch_mean_code] if self.batch > 1 else [])
                }
                if self.chunk
                else {}
            ),
            **({"batch": [self.batch, eq.MASK_BATCH]} if self.batch > 1 else {}),
            **({"threads": self.threads} if self.threads > 1 else {}),
            **({"factorized": self._grad_code} if self.factorized else {}),
            **({"boundary": self._boundary_code} if self.factorized and self.chunk else {}),
            **({"neuron": _model_key(self.model_code)} if self.model_code is not None else {}),
            "headers": [header_text(name) for name in HEADERS],
            **b2.get_device().cache_parts(),  # the device's own (brian2cuda's version and nvcc flags)
            # Brian2's numbered names (an older network still referenced): a project of its own, never a
            # rebuild of the usual one
            "names": [self.net.name, sorted(b2.get_device().code_objects)],
            # the synapses are read at launch (network/edges.py) and their monitors sized then
            # (network/records.py): the program knows the tables, not the edges nor their number, so a new
            # seed of a sparse network runs the same build
            "edge_tables": [table.key() for table in self._edge_tables],
        }

    def _compile(self, b2, duration) -> None:
        """A standalone device: generate and compile the project (run later with ``run_args``; without
        :attr:`_compile_code` only generated, in the given ``build_dir``); runtime: store the initial state
        that every trial restores."""
        if self._compiled:
            steps, width = self.n_steps * max(1, self.chunk), self.batch * self.n_in
            if self._tables:  # the launch's input byte table (else the inputs are a TimedArray)
                b2.get_device().insert_code(
                    "before_network_run",
                    f'neuroplast_input_load((brian::results_dir + "{INPUT_TABLE_FILE}").c_str(), '
                    f"{steps}L, {width}L);",
                )
            if self.factorized:
                self._grad_code = self._factorized_code(b2)
                # room for one trial's ψ: a chunk's boundaries empty the record after each trial's gradient
                reserve = f"neuroplast_psi_reserve({self.n_steps}L, {self.batch * self.n_rec});"
                b2.get_device().insert_code("before_network_run", reserve)
                b2.get_device().insert_code("after_network_run", self._grad_code)
            self.net.run(duration, namespace=self._namespace)

            b2.get_device().leave_unwritten(self._unread_variables())

            def build(folder: Path) -> None:
                b2.get_device().build(
                    directory=str(folder), compile=self._compile_code, run=False, with_output=False
                )

            if not self._compile_code:  # code only: never a cache entry, never launched
                build(self._build_dir)
                self.cache_hit = False
                self._device = b2.get_device()
                b2.set_device("runtime")
                return
            if self._build_dir is not None:
                build(self._build_dir)
                self.cache_hit = False
            else:
                self.build_dir = standalone_root() / cache_key(self._cache_parts(b2))
                self.cache_hit = build_cached(self.build_dir, build)
            self._device = b2.get_device()
            if self.factorized:  # written by the gradient code, which Brian2 does not know of: read them back
                written = [self.groups["readout"].variables["gb"]]
                written += [syn.variables["g"] for syn in self.synapses.values()]
                self._device.forget_cached(written)
            self._results = results_subdir(self._build_dir or self.build_dir)
            # the synapses of every launch of this network (network/edges.py), read before they are created
            self._device.write_files(self._results, {t.file: t.data() for t in self._edge_tables})
            b2.set_device("runtime")  # leave the process usable for runtime networks
        else:
            self.net.store("initial")

    def _results_folder(self) -> Path:
        """The results folder of this network's launches (cpp_standalone)."""
        return Path(self._device.project_dir) / self._results

    def _check_usable(self) -> None:
        if not self._compile_code:
            raise RuntimeError("built with compile=False: this network's code was generated, not compiled")
        if self._stale:
            # Brian2 has one standalone project per process and a newer network took it: build this one
            # again. Its code is unchanged, so Brian2 rewrites no file and compiles nothing (≈ 1–2 s).
            self._build()

    def _release_brian2_objects(self) -> None:
        """Drop this network's Brian2 objects (attributes holding them, alone or in a container): it was
        retired (:attr:`_stale`), and :meth:`_build` makes them again before it is used.  Alive, they would
        give the objects of the network that took the project numbered names."""
        from brian2.core.names import Nameable

        def holds(value: Any) -> bool:
            items = value.values() if isinstance(value, dict) else value
            if isinstance(value, Nameable):
                return True
            return isinstance(value, (dict, list, tuple)) and any(isinstance(v, Nameable) for v in items)

        for name, value in list(vars(self).items()):
            if holds(value):
                setattr(self, name, None)

    def _run(self, values: dict, arrays: dict, p: ModelParams, n_trials: int | None = None) -> None:
        """Run one launch from the initial state with these variable and TimedArray values (``n_trials``: a
        chunk's launch of that many trials, fewer than the compiled ``chunk``)."""
        import brian2 as b2

        if self._compiled:
            args, files = self._launch_arguments({**values, **arrays})
            shared = running(self.build_dir) if self._build_dir is None else contextlib.nullcontext()
            with shared:  # a build by another process waits until this trial has read the project's files
                duration = None
                if n_trials is not None and n_trials < self.chunk:  # as Brian2 makes the compiled one
                    duration = float(self.n_steps * n_trials * (p.dt * b2.ms))
                self._device.launch(self._results, args, files, duration)
        else:
            b2.set_device("runtime")
            self.net.restore("initial")
            for view, val in values.items():
                view[:] = val
            for ta, val in arrays.items():
                ta.values[:] = val
            with self._compilers():  # the first run compiles the code objects
                self.net.run(self.n_steps * p.dt * b2.ms, namespace=self._namespace)
            _raise_if_stopped(b2, self.net, self.n_steps, p.dt)

    def _launch_arguments(self, values: dict) -> tuple[dict, dict]:
        """A launch's values as the device's run arguments, and the raw files the binary reads itself."""
        from neuroplast.network.engine import RunArgument

        args, files = {}, {}
        for key, value in values.items():
            if key is INPUT_TABLE:  # read by the binary itself (network/include/neuroplast_input.h)
                files[INPUT_TABLE_FILE] = np.asarray(value, dtype=np.uint8)
            else:
                args[RunArgument.of(key, self._n_synapses)] = value
        return args, files


def _model_key(code: Any) -> list:
    """What a neuron model's generated code (:class:`.model_code.ModelCode`) puts into a build."""
    return [
        code.model.name,
        code.group,
        code.update,
        code.threshold_distance,
        code.after_psi,
        code.sweep,
        code.input_group,
        code.input_update,
    ] + ([code.post_update] if code.post_update else [])
