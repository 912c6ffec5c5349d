"""Brian2 wiring of the model of docs/model.md: assembly only.

The maths lives in NumPy (:mod:`neuroplast.model.dynamics`); the Brian2 statements and the within-step
schedule (which operation runs in which ``when`` slot and ``order``) in :mod:`neuroplast.network.equations`.

One :class:`Brian2Network` is compiled once for given sizes, connectivity and
trial length; every trial then sets weights, per-neuron parameters, inputs and
targets without recompiling (runtime: in place; cpp_standalone: ``run_args``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from neuroplast.devices import device_info
from neuroplast.model.connectivity import SYNAPTIC, Connectivity
from neuroplast.model.losses import get_loss
from neuroplast.model.params import ModelParams, Weights
from neuroplast.model.simulator import TrialResult
from neuroplast.model.surrogates import get_surrogate
from neuroplast.network import equations as eq
from neuroplast.network import factorized as fz
from neuroplast.network.cache import (
    build_cached,
    cache_key,
    repair_cython_cache,
    results_subdir,
    running,
    standalone_root,
)
from neuroplast.network.devices import BRIAN2_DEVICES, configure_brian2
from neuroplast.network.headers import HEADERS, header_kwds, header_stamp, header_text

__all__ = ["Brian2Network", "TrialResult", "RECORDABLE"]

#: Recurrent variables a network can record at every step (``record``), as :class:`TrialResult` names them.
RECORDABLE = ("v", "a", "z", "psi", "refractory", "L")
_MONITORED = {"refractory": "refr"}  # TrialResult name -> Brian2 variable, where they differ

#: The file of a launch's input table in its results folder (read by the binary before the run).
INPUT_TABLE_FILE = "input.u8"
_INPUT_TABLE = "input table"  # the key of the table among a launch's arrays (``_trial_arrays``)


_ACTIVE_STANDALONE: list[Brian2Network] = []
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


def _slot(operation: str) -> dict[str, str | int]:
    """``when`` and ``order`` of ``operation`` (:data:`.equations.SCHEDULE`), as keywords."""
    when, order = eq.SCHEDULE[operation]
    return {"when": when, "order": order}


def _schedule(obj, operation: str) -> None:
    """Put a Brian2 object (thresholder, pathway, summed-variable updater, monitor) in its slot."""
    obj.when, obj.order = eq.SCHEDULE[operation]


class Brian2Network:
    """The model as a Brian2 network, compiled once and run trial by trial.

    Parameters
    ----------
    params : ModelParams
        Model constants; per-neuron ρ, β, and n_ref can change per trial.
    masks : Weights
        Only the masks (connectivity) and sizes are used for building.
    n_steps : int
        Steps per trial T.
    device : str
        A device of :data:`neuroplast.devices.DEVICES` that Brian2 implements
        (:data:`.devices.BRIAN2_DEVICES`: ``"runtime"``, ``"cpp_standalone"``).
    loss : str
        Loss name (``"mse"`` or ``"cross_entropy"``), for the online error and
        learning signal.
    gradients : bool
        Add the online e-prop eligibility traces and gradient accumulators.
    regularization : bool
        Also accumulate Σ_t e_t per synapse (needed for the firing-rate regularization term).
    adaptation : bool, optional
        Carry the per-synapse ALIF trace ε^a (default: whether any β of ``params`` is non-zero). Without
        it, trials with β ≠ 0 are refused.
    record : bool or sequence of str
        Record v, a, z, ψ, r̂ (and, with ``gradients``, L) of every recurrent neuron at every step; or only
        the named ones (:data:`RECORDABLE`).  z always comes from the spike monitor (the same 0/1 values).
    build_dir : path, optional
        cpp_standalone project folder (default: a folder under the cache).
    update_every : int
        k > 0: learn inside the trial — after every k-th step (t = k, 2k, … < T) the weights take an
        optimizer step on the gradient accumulated since the previous one (docs/model.md §6; needs
        ``gradients``).  0: weights are constant during a trial.
    rule_code : dict, optional
        The rule's in-trial update as Brian2 code (:attr:`Rule.brian2_update
        <neuroplast.plasticity.rules.Rule.brian2_update>`); required with ``update_every``.
    in_trial_optimizer : {"sgd", "adam"}
        Optimizer of the in-trial updates; Adam keeps its moments per synapse inside the simulation.
    event_driven : bool, optional
        Update a synapse's eligibility state only at steps where its postsynaptic ψ ≠ 0 (a Brian2 custom
        event), carrying the steps in between in per-neuron factors (docs/model.md §5). Default: when
        the surrogate has compact support (``piecewise_linear``), where ψ = 0 most of the time.
    chunk_trials : int
        K > 0: one launch runs K trials one after another (:meth:`run_chunk`, docs/model.md §7): at every
        trial boundary the finished trial's gradient takes the optimizer step inside the simulation and
        every state variable goes back to rest.  cpp_standalone only; needs ``gradients``, no in-trial
        updates and no recording.  0: one trial per launch (:meth:`run_trial`).
    chunk_optimizer : {"sgd", "adam"}
        The optimizer of the boundary steps (Adam keeps its moments per synapse).
    chunk_feedback : {"fixed", "symmetric"}
        How B moves at a boundary: not at all (random e-prop), or B = the new W_out (symmetric e-prop).
    batch : int
        B ≥ 1 trials side by side in one launch (:meth:`run_batch`, docs/model.md §8): B copies of every
        group and projection, sharing the weights, each copy fed its own trial. Each copy computes
        exactly what a network of one copy computes for its trial (the same operations in the same
        order). B > 1 needs ``update_every`` = 0 and ``chunk_trials`` = 0.
    threads : int
        OpenMP threads of the cpp_standalone binary (default 1); the results are the same for every value.
    factorized : bool
        cpp_standalone only, without ``gradients``, in-trial updates or chunks: the binary computes every
        trial's factorized e-prop gradient after the run (:mod:`neuroplast.network.factorized`, docs/model.md
        §9) — the learning signal c_out B err with this launch's ``feedback``, the rate regularizer of
        ``reg`` included — and returns it in :attr:`TrialResult.grads` (``regularized``); ψ never leaves
        the binary.
    reg : (float, float)
        c_reg and f* (spikes per step) of the rate regularizer of the ``factorized`` gradients.
    """

    def __init__(
        self,
        params: ModelParams,
        masks: Weights,
        n_steps: int,
        *,
        device: str = "runtime",
        loss: str = "mse",
        gradients: bool = False,
        regularization: bool = True,
        adaptation: bool | None = None,
        record: bool | tuple[str, ...] = True,
        build_dir: str | Path | None = None,
        update_every: int = 0,
        rule_code: dict[str, str] | None = None,
        event_driven: bool | None = None,
        in_trial_optimizer: str = "sgd",
        chunk_trials: int = 0,
        chunk_optimizer: str = "sgd",
        chunk_feedback: str = "fixed",
        batch: int = 1,
        threads: int = 1,
        factorized: bool = False,
        reg: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        if device not in BRIAN2_DEVICES:
            raise ValueError(f"unknown device {device!r} (known: {', '.join(BRIAN2_DEVICES)})")
        #: What the device can do (:mod:`neuroplast.devices`): every device-dependent choice below asks it.
        self.capabilities = device_info(device).capabilities
        #: A compiled program launched per trial (else Brian2's runtime objects in this process).
        self._compiled = self.capabilities.ahead_of_time
        if int(threads) != threads or threads < 1:
            raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
        if threads > 1 and not self.capabilities.threads:
            raise ValueError("threads > 1 needs device 'cpp_standalone' (OpenMP threads of its binary)")
        #: OpenMP threads of the cpp_standalone binary (1: none).
        self.threads = int(threads)
        self.params = params
        self.n_steps = int(n_steps)
        self.device = device
        self.loss = get_loss(loss)
        self.gradients = gradients
        self.regularization = gradients and regularization
        # Without ALIF neurons the per-synapse ε^a is identically 0: leave it out (less memory traffic).
        self.adaptation = bool(np.any(params.beta != 0.0)) if adaptation is None else bool(adaptation)
        self._recorded = self._recorded_names(record, gradients)
        self.record = bool(self._recorded)
        self.n_in, self.n_rec, self.n_out = masks.n_in, masks.n_rec, masks.n_out
        connectivity = Connectivity.of(masks)
        #: (source, target) ids of the synaptic projections, in the log's edge order.
        self.edges = {key: connectivity.edges[key] for key in SYNAPTIC}
        #: (presynaptic, postsynaptic) group sizes of one copy, per projection.
        self._sizes = {
            "input": (self.n_in, self.n_rec),
            "recurrent": (self.n_rec, self.n_rec),
            "output": (self.n_rec, self.n_out),
        }
        self._build_dir = Path(build_dir) if build_dir else None
        self.update_every = int(update_every)
        if self.update_every < 0:
            raise ValueError(f"update_every must be >= 0 steps, got {update_every}")
        if self.update_every and not gradients:
            raise ValueError("in-trial updates (update_every > 0) need gradients=True")
        if self.update_every and rule_code is None:
            raise ValueError("in-trial updates need the rule's Brian2 update code (rule_code)")
        self.rule_code = dict(rule_code or {})
        if in_trial_optimizer not in ("sgd", "adam"):
            raise ValueError(f"in-trial updates support 'sgd' and 'adam', not {in_trial_optimizer!r}")
        self.chunk = int(chunk_trials)
        self._check_chunk(chunk_optimizer, chunk_feedback)
        self.batch = int(batch)
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1 trials, got {batch}")
        if self.batch > 1 and (self.update_every or self.chunk):
            raise ValueError("trials side by side (batch > 1) need update_every = 0 and chunk_trials = 0")
        self.chunk_feedback = chunk_feedback
        #: The binary computes the factorized e-prop gradients after the run (network/factorized.py).
        self.factorized = bool(factorized)
        if self.factorized and (
            not self.capabilities.compiled_gradients or gradients or self.update_every or self.chunk
        ):
            raise ValueError(
                "factorized gradients in the binary need device 'cpp_standalone', gradients=False, "
                "update_every=0 and chunk_trials=0"
            )
        self.reg = (float(reg[0]), float(reg[1]))
        self.adam = (bool(self.update_every) and in_trial_optimizer == "adam") or (
            self.chunk > 0 and chunk_optimizer == "adam"
        )
        compact = get_surrogate(params.surrogate).compact
        self.event_driven = bool(gradients and (compact if event_driven is None else event_driven))
        self._order_synapses()
        self._build()

    @staticmethod
    def _recorded_names(record: bool | tuple[str, ...], gradients: bool) -> tuple[str, ...]:
        """The recorded variables, in :data:`RECORDABLE` order (``True``: all of them; L needs gradients)."""
        allowed = tuple(k for k in RECORDABLE if gradients or k != "L")
        if isinstance(record, bool):
            return allowed if record else ()
        unknown = sorted(set(record) - set(allowed))
        if unknown:
            raise ValueError(f"cannot record {', '.join(unknown)} (known: {', '.join(allowed)})")
        return tuple(k for k in allowed if k in record)

    def _check_chunk(self, optimizer: str, feedback: str) -> None:
        if self.chunk < 0:
            raise ValueError(f"chunk_trials must be >= 0, got {self.chunk}")
        if not self.chunk:
            return
        if not self.capabilities.chunks:
            raise ValueError("many trials per launch (chunk_trials > 0) need device 'cpp_standalone'")
        if not self.gradients or self.update_every or self.record:
            raise ValueError("chunk_trials > 0 needs gradients=True, update_every=0 and record=False")
        if optimizer not in ("sgd", "adam"):
            raise ValueError(f"chunk_optimizer must be 'sgd' or 'adam', not {optimizer!r}")
        if feedback not in ("fixed", "symmetric"):
            raise ValueError(f"chunk_feedback must be 'fixed' or 'symmetric', not {feedback!r}")

    def _order_synapses(self) -> None:
        """Synapse order inside Brian2 (``edges`` always keep the log's (source, target) order).

        Spike propagation wants the synapses grouped by source, an eligibility event (event-driven path)
        wants them grouped by target. So the event-driven path keeps the eligibility state in separate
        synapse objects grouped by target next to the weights grouped by source ("split"); with in-trial
        updates, which need w and g in one object, everything is grouped by target. The sweep path: by
        source.
        """
        self._split = self.event_driven and not self.update_every and not self.chunk
        self._b2_edges, self._elig_edges, self._to_log, self._from_log = {}, {}, {}, {}
        for key, (src, tgt) in self.edges.items():
            by_target = np.lexsort((src, tgt))
            order = (
                by_target
                if self.event_driven and not self._split and key != "output"
                else np.arange(src.size)
            )
            self._b2_edges[key] = (src[order], tgt[order])
            self._to_log[key] = np.argsort(order, kind="stable")
            self._from_log[key] = order
            split = self._split and key != "output"
            self._elig_edges[key] = (src[by_target], tgt[by_target]) if split else self._b2_edges[key]

    def _copies(self, src: np.ndarray, tgt: np.ndarray, n_src: int, n_tgt: int) -> tuple:
        """Synapse ids of all copies (:attr:`batch`): copy b's are copy 0's shifted by b neurons of each
        side, one copy after the other, so that every copy keeps copy 0's synapse order."""
        shift = np.arange(self.batch)[:, None]
        return (src[None, :] + shift * n_src).ravel(), (tgt[None, :] + shift * n_tgt).ravel()

    # ------------------------------------------------------------------ build
    def _loss_objects(self, b2, out) -> list:
        """Loss error on the readout after y_t (and, for a softmax loss, the normaliser Σ_k exp(y_k))."""
        objs = []
        if self.loss.softmax:
            norm = b2.Synapses(out, out, eq.SOFTMAX_NORMALISER, name="softmax_norm")
            if self.batch == 1:
                norm.connect()
            else:  # all to all within each copy, in the order of connect(): source-major
                k = self.n_out
                i, j = self._copies(np.repeat(np.arange(k), k), np.tile(np.arange(k), k), k, k)
                norm.connect(i=i, j=j)
            upd = norm.summed_updaters["expsum_post"]
            upd.when, upd.order = eq.SCHEDULE["loss_normaliser"]
            objs.append(norm)
        when, order = eq.SCHEDULE["loss_error"]
        code = self.loss.brian2_error
        if self.batch > 1 and self.loss.uses_mask:  # each copy's own recall window: a column per readout
            if eq.MASK_SINGLE not in code:
                raise ValueError(
                    f"loss {self.loss.name!r}: trials side by side need its Brian2 error to read the recall "
                    f"window as {eq.MASK_SINGLE!r}"
                )
            code = code.replace(eq.MASK_SINGLE, eq.MASK_BATCH)
        out.run_regularly(code, when=when, order=order, name=self.loss.brian2_name)
        return objs

    def _build(self) -> None:
        """Create the Brian2 objects (in a fixed order), the network, and compile it (or store its state)."""
        import brian2 as b2

        self._start_device(b2)
        p = self.params
        dt = p.dt * b2.ms
        b2.defaultclock.dt = dt
        self._timed_arrays(b2, dt)
        inp, rec, out = self._groups(b2)
        self._objects = [inp, rec, out]
        s_in, s_rec, s_out = self._projections(b2, inp, rec, out)
        self._objects += self._loss_objects(b2, out)
        if self.gradients:
            self._gradient_objects(rec, out, s_in, s_rec, s_out)
        if self.update_every:
            self._objects += self._in_trial_objects(b2, out, s_in, s_rec, s_out, dt)
        if self.chunk:
            self._objects += self._chunk_objects(b2, inp, rec, out, s_in, s_rec, s_out, dt)
        self._objects += self._monitors(b2, rec, out)
        if self.factorized:
            self._objects += self._factorized_monitors(b2, inp, rec, out)
        self.groups = {"input": inp, "recurrent": rec, "readout": out}
        self.synapses = {"input": s_in, "recurrent": s_rec, "output": s_out}
        self.net = b2.Network(*self._objects)
        self._set_shared(p)
        self._compile(b2, self.n_steps * max(1, self.chunk) * dt)

    def _start_device(self, b2) -> None:
        """Select the device; a cpp_standalone network starts a fresh project (and retires the old one)."""
        configure_brian2()
        if self._compiled:
            for old in _ACTIVE_STANDALONE:
                old._stale = True
            _ACTIVE_STANDALONE.clear()
            import neuroplast.network.engine  # noqa: F401 - registers the device in Brian2's device table

            b2.set_device(BRIAN2_DEVICES[self.device], build_on_run=False)
            b2.device.reinit()  # one standalone project per process: start a fresh one
            b2.set_device(BRIAN2_DEVICES[self.device], build_on_run=False)
            # Brian2's OpenMP code splits the per-neuron loops and the synaptic code that writes only
            # synaptic variables between the threads; code writing neuron variables (v_post += w) and the
            # summed variables stay on one thread in synapse order. So every element sees the same operations
            # in the same order for any thread count (tests/training/test_batch.py, test_chunked.py).
            b2.prefs.devices.cpp_standalone.openmp_threads = self.threads if self.threads > 1 else 0
            _ACTIVE_STANDALONE.append(self)
        else:
            b2.set_device(BRIAN2_DEVICES[self.device])
            _repair_cython_cache_once()
            b2.prefs.codegen.target = "cython"
        self._stale = False

    def _timed_arrays(self, b2, dt) -> None:
        """Inputs X (the runtime device's TimedArray, cpp_standalone's byte table), targets Y* and the
        recall-window mask, set per trial."""
        T, B = self.n_steps * max(1, self.chunk), self.batch
        #: cpp_standalone reads each launch's inputs from a byte table (:data:`.equations.INPUT_X`).
        self._table = self._compiled
        self.Y = b2.TimedArray(np.zeros((T, B * self.n_out)), dt=dt, name="Y_target")
        self.M = b2.TimedArray(np.zeros((T, 1 if B == 1 else B * self.n_out)), dt=dt, name="M_mask")
        self._namespace = {"Y_target": self.Y, "M_mask": self.M}
        if self._table:
            self.X = None
            fn = b2.Function(None, arg_units=[1, 1], return_unit=1, arg_names=["i", "step"])
            fn.implementations.add_implementation(
                "cpp",
                header_stamp(eq.INPUT_TABLE_HEADER),
                name="neuroplast_input_spike",
                compiler_kwds=header_kwds(eq.INPUT_TABLE_HEADER),
            )
            self._namespace["neuroplast_input_spike"] = fn
        else:
            self.X = b2.TimedArray(np.zeros((T, B * self.n_in)), dt=dt, name="X_input")
            self._namespace["X_input"] = self.X

    def _groups(self, b2) -> tuple:
        """The input, recurrent and readout neurons with their per-step updates."""
        B = self.batch
        x = eq.INPUT_X["table" if self._table else "timed_array"]
        inp = b2.NeuronGroup(B * self.n_in, eq.INPUT_MODEL, threshold=eq.input_threshold(x), name="input")
        rec = b2.NeuronGroup(
            B * self.n_rec,
            eq.recurrent_model(self.event_driven)
            + (eq.CHUNK_SHARED if self.chunk else eq.REG_SHARED if self.factorized else ""),
            threshold=eq.RECURRENT_THRESHOLD,
            reset=eq.RECURRENT_RESET,
            events={"psi_active": eq.PSI_EVENT} if self.event_driven else None,
            name="recurrent",
        )
        surrogate = get_surrogate(self.params.surrogate)
        rec.run_regularly(
            eq.recurrent_update(surrogate, traces=self.gradients),
            name="recurrent_update",
            **_slot("recurrent_update"),
        )
        _schedule(rec.thresholder["spike"], "recurrent_threshold")
        _schedule(rec.resetter["spike"], "recurrent_reset")
        if self.gradients:  # z̄ of the inputs: only the online gradient reads it
            inp.run_regularly(eq.input_trace(x), name="input_trace", **_slot("input_trace"))
        _schedule(inp.thresholder["spike"], "input_threshold")
        out = b2.NeuronGroup(B * self.n_out, eq.readout_model(self.adam), name="readout")
        out.run_regularly(eq.READOUT_UPDATE, name="readout_update", **_slot("readout_update"))
        return inp, rec, out

    def _projections(self, b2, inp, rec, out) -> tuple:
        """Input, recurrent and readout synapses (and, split, the eligibility synapses grouped by target)."""
        #: Synapses per Brian2 synapse object (the size of its variables, which standalone Brian2 leaves 0).
        self._n_synapses: dict[str, int] = {}
        elig_model = eq.eligibility_model(self.adaptation, self.regularization)
        syn_model = eq.projection_model(elig_model if self.gradients and not self._split else None, self.adam)
        syn_model += "\ngt : 1" if self.chunk else "\ng : 1" if self.factorized else ""
        events = {}
        if self.event_driven:
            events = {
                "on_post": {"elig": eq.eligibility_event(self.adaptation, self.regularization)},
                "on_event": {"pre": "spike", "elig": "psi_active"},
            }
        if self._split:
            split = {"on_post": events["on_post"], "on_event": {"elig": "psi_active"}}
            self._elig = {
                "input": b2.Synapses(inp, rec, elig_model, name="elig_input", **split),
                "recurrent": b2.Synapses(rec, rec, elig_model, name="elig_recurrent", **split),
            }
            for key, syn in self._elig.items():
                i, j = self._copies(*self._elig_edges[key], *self._sizes[key])
                syn.connect(i=i, j=j)
                self._n_synapses[syn.name] = len(i)
            self._objects += list(self._elig.values())
            events = {}
        # every spike arrives within its step: one delay for the whole pathway (no per-synapse delay array)
        events["delay"] = {"pre": 0 * b2.ms}
        s_in = b2.Synapses(inp, rec, syn_model, on_pre=eq.ON_PRE["input"], name="proj_input", **events)
        s_rec = b2.Synapses(
            rec, rec, syn_model, on_pre=eq.ON_PRE["recurrent"], name="proj_recurrent", **events
        )
        if not self._split:
            self._elig = {"input": s_in, "recurrent": s_rec}
        s_out = b2.Synapses(
            rec,
            out,
            eq.output_model(self.gradients, self.adam, self.factorized),
            on_pre=eq.ON_PRE["output"],
            name="proj_output",
            delay=0 * b2.ms,
        )
        for syn, key in ((s_in, "input"), (s_rec, "recurrent"), (s_out, "output")):
            i, j = self._copies(*self._b2_edges[key], *self._sizes[key])
            syn.connect(i=i, j=j)
            self._n_synapses[syn.name] = len(i)
            _schedule(syn.pre, f"{key}_propagation")
        self._objects += [s_in, s_rec, s_out]
        return s_in, s_rec, s_out

    def _gradient_objects(self, rec, out, s_in, s_rec, s_out) -> None:
        """Eligibility traces, learning signal and gradient accumulators (docs/model.md §3)."""
        _schedule(s_out.summed_updaters["L_pre"], "learning_signal")
        if self.event_driven:
            self._event_objects(rec, self._elig["input"], self._elig["recurrent"])
        else:
            self._sweep_objects(s_in, s_rec)
        rec.run_regularly(eq.ZOUT_TRACE, name="zout_trace", **_slot("zout_trace"))
        s_out.run_regularly(eq.GRAD_OUTPUT, name="grad_output", **_slot("grad_output"))
        out.run_regularly(eq.GRAD_BIAS, name="grad_bias", **_slot("grad_bias"))

    def _event_objects(self, rec, s_in, s_rec) -> None:
        """The event-driven path inside ``before_end`` (docs/model.md §5)."""
        rec.run_regularly(eq.LAZY_FACTOR, name="lazy_factor", **_slot("lazy_factor"))
        _schedule(rec.thresholder["psi_active"], "psi_event")
        for syn in (s_in, s_rec):
            _schedule(syn.elig, "eligibility_event")
        rec.run_regularly(eq.lazy_carry(self.adaptation), name="lazy_carry", **_slot("lazy_carry"))
        rec.D = 1.0
        rec.R = 1.0

    def _sweep_objects(self, s_in, s_rec) -> None:
        """One pass over all synapses per step (any surrogate)."""
        code = eq.eligibility_sweep(self.adaptation, self.regularization)
        for syn, name in ((s_in, "input"), (s_rec, "recurrent")):
            syn.run_regularly(code, name=f"elig_{name}", **_slot("eligibility_sweep"))

    def _in_trial_objects(self, b2, out, s_in, s_rec, s_out, dt) -> list:
        """In-trial optimizer steps every k steps and monitors of the weights they give (docs/model.md §6).

        The updates run in the ``start`` slot of steps k, 2k, … (0-based), i.e. after step k, 2k, …
        (1-based) has been accumulated and before the next step propagates a spike. Their clock also
        ticks at t = 0, where ``active`` = 0 makes the step a no-op (g is still 0 there, and a weight
        decay must not act).
        """
        every = self.update_every * dt
        self._namespace["t_first_update"] = 0.5 * dt
        self._namespace["t_update_period"] = every
        update = _slot("in_trial_update")
        for syn, key, rule in (
            (s_in, "input", "hidden"),
            (s_rec, "recurrent", "hidden"),
            (s_out, "output", "readout"),
        ):
            code = eq.in_trial_update(
                self.rule_code.get(rule, ""), adam=self.adam, flush=key != "output" and self.event_driven
            )
            syn.run_regularly(code, dt=every, name=f"in_trial_{key}", **update)
        out.run_regularly(eq.in_trial_bias(self.adam), dt=every, name="in_trial_bias", **update)
        if self.event_driven:
            s_in.target.run_regularly(
                eq.IN_TRIAL_LAZY_RESET, dt=every, name="in_trial_lazy_reset", **_slot("in_trial_lazy_reset")
            )

        def mon(group, variables, name):
            return b2.StateMonitor(
                group, variables, record=True, dt=every, name=name, **_slot("in_trial_monitor")
            )

        self.in_trial_mons = {
            "input": mon(s_in, "w", "w_in_mon"),
            "recurrent": mon(s_rec, "w", "w_rec_mon"),
            "output": mon(s_out, ["w", "B"], "w_out_mon"),
            "bias": mon(out, "b", "b_mon"),
        }
        return list(self.in_trial_mons.values())

    def _chunk_functions(self, b2) -> None:
        """The C++ functions of the boundary update (:data:`.equations.CHUNK_FUNCTIONS`), by name."""
        for name, (code, n_args) in eq.CHUNK_FUNCTIONS.items():
            fn = b2.Function(
                None, arg_units=[1] * n_args, return_unit=1, arg_names=[f"a{k}" for k in range(n_args)]
            )
            fn.implementations.add_implementation("cpp", code, name=name)
            self._namespace[name] = fn

    def _chunk_objects(self, b2, inp, rec, out, s_in, s_rec, s_out, dt) -> list:
        """Trial boundaries inside one launch (docs/model.md §7): gradient, optimizer step, monitors, reset.

        The boundary clock ticks at t = 0, T, 2T, …; at t = 0 (``active`` = 0) the update leaves every
        variable unchanged, so a launch of K trials takes K − 1 steps inside; the last trial's gradient is
        read from the state at the end (as after a single trial).
        """
        self._chunk_functions(b2)
        period = self.n_steps * dt
        self._namespace["t_first_update"] = 0.5 * dt
        self._namespace["t_update_period"] = period
        kw = {"dt": period}
        rec.run_regularly(eq.CHUNK_REGULARIZATION, name="chunk_reg", **kw, **_slot("chunk_regularization"))
        code = eq.chunk_gradient(self.event_driven, self.regularization)
        for syn, key in ((s_in, "input"), (s_rec, "recurrent")):
            syn.run_regularly(code, name=f"chunk_grad_{key}", **kw, **_slot("chunk_gradient"))
            syn.run_regularly(
                eq.chunk_update(self.adam, "gt"), name=f"chunk_update_{key}", **kw, **_slot("chunk_update")
            )
        symmetric = self.chunk_feedback == "symmetric"
        s_out.run_regularly(
            eq.chunk_update(self.adam, "g", symmetric),
            name="chunk_update_output",
            **kw,
            **_slot("chunk_update"),
        )
        out.run_regularly(
            eq.chunk_bias_update(self.adam), name="chunk_update_bias", **kw, **_slot("chunk_update")
        )
        resets = [
            (inp, "input"),
            (rec, "recurrent"),
            (out, "readout"),
            (s_in, "hidden_synapses"),
            (s_rec, "hidden_synapses"),
            (s_out, "output_synapses"),
        ] + ([(rec, "recurrent_lazy")] if self.event_driven else [])
        for k, (obj, group) in enumerate(resets):
            code = eq.chunk_reset(group, adaptation=self.adaptation, regularization=self.regularization)
            obj.run_regularly(code, name=f"chunk_reset_{k}", **kw, **_slot("chunk_reset"))

        def mon(group, variables, name, slot):
            return b2.StateMonitor(group, variables, record=True, dt=period, name=name, **_slot(slot))

        self.chunk_grad_mons = {
            "input": mon(s_in, "gt", "chunk_g_in", "chunk_grad_monitor"),
            "recurrent": mon(s_rec, "gt", "chunk_g_rec", "chunk_grad_monitor"),
            "output": mon(s_out, "g", "chunk_g_out", "chunk_grad_monitor"),
            "bias": mon(out, "gb", "chunk_g_bias", "chunk_grad_monitor"),
        }
        self.chunk_weight_mons = {
            "input": mon(s_in, "w", "chunk_w_in", "chunk_weight_monitor"),
            "recurrent": mon(s_rec, "w", "chunk_w_rec", "chunk_weight_monitor"),
            "output": mon(s_out, "w", "chunk_w_out", "chunk_weight_monitor"),
            "bias": mon(out, "b", "chunk_w_bias", "chunk_weight_monitor"),
        }
        return [*self.chunk_grad_mons.values(), *self.chunk_weight_mons.values()]

    def _monitors(self, b2, rec, out) -> list:
        """Recurrent spikes, the recorded recurrent states (when ``record``) and the readout."""
        self.spike_mon = b2.SpikeMonitor(rec, name="rec_spikes")
        _schedule(self.spike_mon, "spike_monitor")
        monitors = [self.spike_mon]
        # z is never monitored as a state: the spike monitor gives the same 0/1 values (T × N fewer doubles
        # to record, write and read back per copy).
        rec_vars = [_MONITORED.get(k, k) for k in self._recorded if k != "z"]
        if rec_vars:
            self.rec_mon = b2.StateMonitor(
                rec, rec_vars, record=True, name="rec_states", **_slot("state_monitor")
            )
            monitors.append(self.rec_mon)
        self.out_mon = b2.StateMonitor(out, ["y"], record=True, name="out_states", **_slot("state_monitor"))
        return monitors + [self.out_mon]

    def _factorized_monitors(self, b2, inp, rec, out) -> list:
        """What the gradients computed in the binary read and nothing else does: the input spikes and the loss
        error of every step (monitors emptied by the gradient code before the results are written), and ψ's
        nonzero values (the record of :data:`.factorized.PSI_HEADER`)."""
        slot = _slot("state_monitor")
        self._grad_mons = {
            "in_spikes": b2.SpikeMonitor(inp, name="grad_in_spikes", **slot),
            "err": b2.StateMonitor(out, "err", record=True, name="grad_err", **slot),
        }
        # ψ's nonzero values, once per step, by a group of one element that calls the recorder
        device = b2.get_device()
        psi = device.get_array_name(rec.variables["psi"])
        fn = b2.Function(None, arg_units=[1], return_unit=1, arg_names=["i"], stateless=False)
        fn.implementations.add_implementation(
            "cpp",
            header_stamp(fz.PSI_HEADER) + fz.psi_recorder(psi),
            name=fz.PSI_RECORDER,
            compiler_kwds=header_kwds(fz.PSI_HEADER),
        )
        self._namespace[fz.PSI_RECORDER] = fn
        recorder = b2.NeuronGroup(1, "recorded : 1", name="grad_psi_recorder")
        recorder.run_regularly(f"recorded = {fz.PSI_RECORDER}(i)", name="grad_psi_record", **slot)
        return [*self._grad_mons.values(), recorder]

    def _factorized_code(self, b2) -> str:
        """The C++ of the gradients (:func:`.factorized.gradient_code`) with this network's array names."""
        device = b2.get_device()
        inp, rec, out = self.groups.values()
        mons, syn = self._grad_mons, self.synapses
        where = {
            "err": (mons["err"], "err"),
            "in_i": (mons["in_spikes"], "i"),
            "in_t": (mons["in_spikes"], "t"),
            "rec_i": (self.spike_mon, "i"),
            "rec_t": (self.spike_mon, "t"),
            "count": (rec, "count"),
            "rho": (rec, "rho"),
            "beta": (rec, "beta"),
            "alpha": (rec, "alpha"),
            "kappa": (out, "kappa"),
            "c_in": (rec, "c_in"),
            "c_out": (out, "c_out"),
            "dt": (rec.clock, "dt"),
            "reg_c": (rec, "reg_c"),
            "reg_T": (rec, "reg_T"),
            "reg_f": (rec, "reg_f"),
            "out_B": (syn["output"], "B"),
            "gb": (out, "gb"),
        }
        for short, key in (("in", "input"), ("rec", "recurrent"), ("out", "output")):
            for var, brian in (("pre", "_synaptic_pre"), ("post", "_synaptic_post"), ("g", "g")):
                where[f"{short}_{var}"] = (syn[key], brian)
        names = {
            k: device.get_array_name(obj.variables[v], access_data=False) for k, (obj, v) in where.items()
        }
        sizes = fz.Sizes(self.batch, self.n_in, self.n_rec, self.n_out, self.n_steps)
        return fz.gradient_code(names, sizes, clear=("err", "in_i", "in_t"))

    def _cache_parts(self, b2) -> dict:
        """Everything that determines the generated code and data files of the standalone project.

        Values set per trial through ``run_args`` (weights, ρ, β, n_ref, inputs, targets, learning rates,
        Adam state) are not part of it, so that runs differing only in those share one build.
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
            **({"chunk": [self.chunk, self.chunk_feedback, eq.CHUNK_FUNCTIONS]} if self.chunk else {}),
            **({"batch": [self.batch, eq.MASK_BATCH]} if self.batch > 1 else {}),
            **({"threads": self.threads} if self.threads > 1 else {}),
            **({"factorized": self._grad_code} if self.factorized else {}),
            "headers": [header_text(name) for name in HEADERS],
            "edges": {k: self._b2_edges[k] for k in sorted(self._b2_edges)},
            "elig_edges": {k: self._elig_edges[k] for k in sorted(self._elig_edges)},
        }

    def _compile(self, b2, duration) -> None:
        """cpp_standalone: generate and compile the project (run later with ``run_args``); runtime: store
        the initial state that every trial restores."""
        if self._compiled:
            steps, width = self.n_steps * max(1, self.chunk), self.batch * self.n_in
            b2.get_device().insert_code(
                "before_network_run",
                f'neuroplast_input_load((brian::results_dir + "{INPUT_TABLE_FILE}").c_str(), '
                f"{steps}L, {width}L);",
            )
            if self.factorized:
                self._grad_code = self._factorized_code(b2)
                b2.get_device().insert_code(
                    "before_network_run", f"neuroplast_psi_reserve({steps}L, {self.batch * self.n_rec});"
                )
                b2.get_device().insert_code("after_network_run", self._grad_code)
            self.net.run(duration, namespace=self._namespace)

            def build(folder: Path) -> None:
                b2.get_device().build(directory=str(folder), compile=True, run=False, with_output=False)

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
            b2.set_device("runtime")  # leave the process usable for runtime networks
        else:
            self.net.store("initial")

    # ---------------------------------------------------------- per-trial I/O
    def _set_shared(self, p: ModelParams) -> None:
        inp, rec, out = self.groups.values()
        inp.alpha = p.alpha
        inp.c_in = p.input_scale
        rec.alpha = p.alpha
        rec.c_in = p.input_scale
        rec.v_th = p.v_th
        rec.gamma = p.gamma
        rec.kappa = p.kappa
        out.kappa = p.kappa
        out.c_out = p.readout_scale

    def _check_usable(self) -> None:
        if self._stale:
            # Brian2 has one standalone project per process and a newer network took it: build this one
            # again. Its code is unchanged, so Brian2 rewrites no file and compiles nothing (≈ 1–2 s).
            self._build()

    def run_trial(
        self,
        weights: Weights,
        x: np.ndarray,
        *,
        target: np.ndarray | None = None,
        mask: np.ndarray | None = None,
        feedback: np.ndarray | None = None,
        params: ModelParams | None = None,
        learning_rate: float = 0.0,
        output_learning_rate: float | None = None,
        weight_decay: float = 0.0,
        adam: dict | None = None,
    ) -> TrialResult:
        """Simulate one trial from rest.

        Parameters
        ----------
        weights : Weights
            Dense weights (must respect the masks the network was built with).
        x : ndarray (T, n_in)
            Input spikes (0/1) per step.
        target : ndarray (T, n_out), optional
            y* (regression) or one-hot π* (classification); zeros if omitted.
        mask : ndarray (T,), optional
            Recall-window mask for cross-entropy (ones if omitted).
        feedback : ndarray (N, n_out), optional
            Learning-signal weights B (default W_outᵀ, symmetric e-prop).
        params : ModelParams, optional
            Per-neuron ρ, β, n_ref for this trial (α, v_th, γ, κ, c_in, c_out are
            fixed at build time and must not differ).
        learning_rate, output_learning_rate, weight_decay : float
            In-trial updates only (``update_every`` > 0): step size η of the input and recurrent weights,
            of the readout weights and bias (default η; 0 keeps the readout fixed), and the rule's
            weight decay λ.
        adam : dict, optional
            In-trial Adam (``in_trial_optimizer="adam"``): ``t`` (steps taken before this trial), ``b1``,
            ``b2``, ``eps`` and the moments ``m``, ``v`` (dicts ``input``, ``recurrent``, ``output``,
            ``bias`` of edge-order vectors, as in the log; zeros if omitted).  The moments after the trial
            come back in :attr:`TrialResult.adam`.
        """
        p, values = self._launch_values(weights, feedback, params)
        if self.update_every:
            self._in_trial_values(values, learning_rate, output_learning_rate, weight_decay)
        if self.adam:
            self._adam_values(values, adam or {})
        self._run(values, self._trial_arrays([(x, target, mask)]), p)
        return self._collect(1)[0]

    def run_batch(
        self,
        weights: Weights,
        trials: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]],
        *,
        feedback: np.ndarray | None = None,
        params: ModelParams | None = None,
    ) -> list[TrialResult]:
        """Simulate up to :attr:`batch` trials from rest side by side, in one launch (docs/model.md §8).

        Parameters
        ----------
        weights : Weights
            Dense weights, the same for every trial.
        trials : list of (x, target, mask)
            1 to ``batch`` trials: input spikes (T, n_in), target (T, n_out) or None (zeros), recall-window
            mask (T,) or None (ones), as for :meth:`run_trial`.  Fewer than ``batch``: the other copies
            run silent trials whose results are dropped.
        feedback : ndarray (N, n_out), optional
            B of every trial (default W_outᵀ).
        params : ModelParams, optional
            Per-neuron ρ, β, n_ref of every trial (as for :meth:`run_trial`).

        Returns
        -------
        list of TrialResult
            One per given trial, in order: each equal to what :meth:`run_trial` returns for that trial.
        """
        n = len(trials)
        if not 1 <= n <= self.batch:
            raise ValueError(f"run_batch takes 1 to {self.batch} trials, got {n}")
        if self.update_every or self.chunk:
            raise ValueError("run_batch needs a network without in-trial updates and chunks")
        p, values = self._launch_values(weights, feedback, params)
        self._run(values, self._trial_arrays(trials), p)
        return self._collect(n)

    def _launch_values(self, weights: Weights, feedback: np.ndarray | None, params: ModelParams | None):
        """The parameters of a launch of :meth:`run_trial` or :meth:`run_batch` (checked) and its
        variable values: weights, per-neuron parameters, the bias and (with ``gradients``) B."""
        self._check_usable()
        p = params or self.params
        self._check_fixed(p)
        values = self._weight_values(weights, p)
        if self.gradients or self.factorized:
            self._feedback_values(values, weights.w_out.T if feedback is None else feedback)
        if self.factorized:
            rec = self.groups["recurrent"]
            values[rec.reg_c] = np.asarray(self.reg[0])
            values[rec.reg_T] = np.asarray(float(self.n_steps))
            values[rec.reg_f] = np.asarray(self.reg[1])
        return p, values

    def _feedback_values(self, values: dict, feedback: np.ndarray) -> None:
        """B of every readout synapse (every copy)."""
        src, tgt = self.edges["output"]
        fb = np.ascontiguousarray(np.asarray(feedback, float)[src, tgt], dtype=float)
        values[self.synapses["output"].B] = np.tile(fb, self.batch)

    def run_chunk(
        self,
        weights: Weights,
        trials: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]],
        *,
        feedback: np.ndarray,
        learning_rate: float,
        adam: dict | None = None,
        reg: tuple[float, float] = (0.0, 0.0),
    ) -> list[TrialResult]:
        """Run up to K trials in one launch, the optimizer stepping at every boundary (docs/model.md §7).

        Parameters
        ----------
        weights : Weights
            The weights of the first trial.
        trials : list of (x, target, mask)
            At most ``chunk_trials`` trials, in order (fewer: the launch simulates only those, its duration
            chosen at run time by the device).
        feedback : ndarray (N, n_out)
            B of the first trial.
        learning_rate : float
            η of every projection and the bias.
        adam : dict, optional
            Adam's state before the first trial (as for :meth:`run_trial`: ``t``, ``b1``, ``b2``, ``eps``,
            moments ``m``, ``v`` as edge vectors).
        reg : (float, float)
            c_reg and f* (spikes per step) of the rate regularization (with ``regularization``).

        Returns
        -------
        list of TrialResult
            One per given trial, with ``ran_with`` (the simulation's weights of that trial).  All but the
            last of a full chunk have ``regularized`` gradients (taken at the next boundary); the last has
            the raw gradient and Σe, as :meth:`run_trial` returns them.
        """
        if not self.chunk:
            raise ValueError("run_chunk needs a network built with chunk_trials > 0")
        n = len(trials)
        if not 1 <= n <= self.chunk:
            raise ValueError(f"run_chunk takes 1 to {self.chunk} trials, got {n}")
        self._check_usable()
        p = self.params
        self._check_fixed(p)
        values = self._weight_values(weights, p)
        self._in_trial_values(values, learning_rate, learning_rate, 0.0)
        if self.adam:
            self._adam_values(values, adam or {})
        rec = self.groups["recurrent"]
        values[rec.reg_c] = np.asarray(float(reg[0]))
        values[rec.reg_T] = np.asarray(float(self.n_steps))
        values[rec.reg_f] = np.asarray(float(reg[1]))
        self._feedback_values(values, feedback)
        # the launch simulates these n trials only (the compiled program holds up to ``chunk``)
        self._run(values, self._trial_arrays(trials, in_time=True), p, n_trials=n)
        return self._collect_chunk(n)

    def _edge_rows(self, mons: dict, var: dict) -> dict[str, np.ndarray]:
        """Monitor rows (one per boundary tick) of every projection in the log's edge order, and the bias."""
        out = {}
        for key, mon in mons.items():
            rows = np.asarray(getattr(mon, var[key])[:]).T
            out[key] = rows.copy() if key == "bias" else rows[:, self._to_log[key]]
        return out

    def _collect_chunk(self, n: int) -> list[TrialResult]:
        """Split one launch of ``n`` trials into per-trial results (the last one's gradient is the state at
        the end of the launch, the others' are taken at the next trial's boundary)."""
        T, N = self.n_steps, self.n_rec
        y = np.asarray(self.out_mon.y[:]).T
        steps = np.rint(np.asarray(self.spike_mon.t_[:]) / (self.params.dt * 1e-3)).astype(np.int64)
        ids = np.asarray(self.spike_mon.i[:]).astype(np.int64)
        grads = self._edge_rows(
            self.chunk_grad_mons, {"input": "gt", "recurrent": "gt", "output": "g", "bias": "gb"}
        )
        used = self._edge_rows(
            self.chunk_weight_mons, {"input": "w", "recurrent": "w", "output": "w", "bias": "b"}
        )
        shapes = {"input": (N, self.n_in), "recurrent": (N, N), "output": (self.n_out, N)}
        results = []
        for k in range(n):
            sel = (steps >= k * T) & (steps < (k + 1) * T)
            res = TrialResult(
                y=y[k * T : (k + 1) * T].copy(),
                spike_count=np.bincount(ids[sel], minlength=N).astype(float),
                spikes=(steps[sel] - k * T, ids[sel]),
                ran_with={key: rows[k].copy() for key, rows in used.items()},
            )
            if k + 1 < n:  # taken at the next boundary, regularization included
                res.grads = {"bias": grads["bias"][k + 1].copy()}
                for key, shape in shapes.items():
                    g = np.zeros(shape)
                    src, tgt = self.edges[key]
                    g[tgt, src] = grads[key][k + 1]
                    res.grads[key] = g
                res.regularized = True
            else:  # the last trial of a full launch: the state at its end
                res.grads, res.esum = self._collect_gradients()
            results.append(res)
        return results

    def _check_input(self, x: np.ndarray) -> np.ndarray:
        T = self.n_steps
        x = np.asarray(x, dtype=float)
        if x.shape != (T, self.n_in):
            raise ValueError(f"x must have shape ({T}, {self.n_in}), got {x.shape}")
        if not np.all((x == 0.0) | (x == 1.0)):
            raise ValueError("Brian2 inputs are spikes: x must contain only 0 and 1")
        return x

    def _weight_values(self, weights: Weights, p: ModelParams) -> dict:
        """Brian2 variable -> value: weights in Brian2's synapse order, per-neuron parameters, the bias."""
        w = {"input": weights.w_in, "recurrent": weights.w_rec, "output": weights.w_out}
        values = {}
        B = self.batch  # every copy: the same values
        for key, syn in self.synapses.items():
            src, tgt = self._b2_edges[key]
            values[syn.w] = np.tile(np.ascontiguousarray(w[key][tgt, src], dtype=float), B)
        rec, out = self.groups["recurrent"], self.groups["readout"]
        values[rec.rho] = np.tile(np.asarray(p.rho, float), B)
        values[rec.beta] = np.tile(np.asarray(p.beta, float), B)
        values[rec.n_ref] = np.full(B * self.n_rec, float(p.n_ref))
        values[out.b] = np.tile(np.asarray(weights.b_out, float), B)
        return values

    def _in_trial_values(self, values: dict, lr: float, output_lr: float | None, decay: float) -> None:
        rec, out = self.groups["recurrent"], self.groups["readout"]
        values[rec.in_trial_lr] = np.asarray(float(lr))
        values[rec.in_trial_decay] = np.asarray(float(decay))
        values[out.in_trial_lr] = np.asarray(float(lr if output_lr is None else output_lr))
        values[out.in_trial_decay] = np.asarray(float(decay))

    def _adam_values(self, values: dict, adam: dict) -> None:
        rec, out = self.groups["recurrent"], self.groups["readout"]
        for grp in (rec, out):
            values[grp.adam_b1] = np.asarray(float(adam.get("b1", 0.9)))
            values[grp.adam_b2] = np.asarray(float(adam.get("b2", 0.999)))
            values[grp.adam_eps] = np.asarray(float(adam.get("eps", 1e-8)))
            values[grp.adam_t0] = np.asarray(float(adam.get("t", 0)))
        targets = {**self.synapses, "bias": out}
        for mom in ("m", "v"):
            given = adam.get(mom, {})
            for key, obj in targets.items():
                n = self.n_out if key == "bias" else self._b2_edges[key][0].size
                vec = np.asarray(given.get(key, np.zeros(n)), dtype=float)
                if vec.shape != (n,):
                    raise ValueError(f"adam[{mom!r}][{key!r}] must have shape ({n},), got {vec.shape}")
                if key != "bias":
                    vec = vec[self._from_log[key]]
                name = f"{mom}b_adam" if key == "bias" else f"{mom}_adam"
                values[getattr(obj, name)] = np.ascontiguousarray(vec)

    def _trial_arrays(self, trials: list, *, in_time: bool = False) -> dict:
        """TimedArray -> values: each trial's inputs (cpp_standalone: the byte table, key ``_INPUT_TABLE``),
        targets (zeros if omitted) and, if the loss reads it, its recall-window mask (ones if omitted).  The
        trials go side by side, one per copy (a mask column per readout unit when there are several copies),
        or — ``in_time`` — one after another (a chunk of ``chunk_trials``); the places without a trial get
        silent inputs."""
        T, n_out = self.n_steps, self.n_out
        K, B = (self.chunk, 1) if in_time else (1, self.batch)
        x = np.zeros((K, T, B, self.n_in), dtype=np.uint8 if self._table else float)
        y = np.zeros((K, T, B, n_out))
        m = np.ones((K, T, B))
        for k, (xk, yk, mk) in enumerate(trials):
            at = (k, slice(None), 0) if in_time else (0, slice(None), k)
            x[at] = self._check_input(xk)
            if yk is not None:
                y[at] = np.asarray(yk, float)
            if mk is not None:
                m[at] = np.asarray(mk, float)
        inputs = _INPUT_TABLE if self._table else self.X
        arrays = {inputs: x.reshape(K * T, B * self.n_in), self.Y: y.reshape(K * T, B * n_out)}
        if self.loss.uses_mask:
            m = m.reshape(K * T, B)
            arrays[self.M] = m if B == 1 else np.repeat(m, n_out, axis=1)
        return arrays

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
            self.net.run(self.n_steps * p.dt * b2.ms, namespace=self._namespace)
            _raise_if_stopped(b2, self.net, self.n_steps, p.dt)

    def _launch_arguments(self, values: dict) -> tuple[dict, dict]:
        """A launch's values as the device's run arguments, and the raw files the binary reads itself."""
        from neuroplast.network.engine import RunArgument

        args, files = {}, {}
        for key, value in values.items():
            if key is _INPUT_TABLE:  # read by the binary itself (network/include/neuroplast_input.h)
                files[INPUT_TABLE_FILE] = np.asarray(value, dtype=np.uint8)
            else:
                args[RunArgument.of(key, self._n_synapses)] = value
        return args, files

    def _check_fixed(self, p: ModelParams) -> None:
        if self.gradients and not self.adaptation and np.any(p.beta != 0.0):
            raise ValueError(
                "this network was built without adaptation traces (all beta = 0); "
                "build it with adaptation=True to run ALIF neurons"
            )
        q = self.params
        for name in ("dt", "alpha", "v_th", "gamma", "kappa", "input_scale", "readout_scale"):
            if abs(getattr(p, name) - getattr(q, name)) > 0.0:
                raise ValueError(f"parameter {name!r} is fixed when the network is built")
        if p.surrogate != q.surrogate:
            raise ValueError("the surrogate is fixed when the network is built")

    # ------------------------------------------------------------ collecting
    def _collect(self, n: int) -> list[TrialResult]:
        """What the monitors and accumulators hold after a launch, per trial (copies 0 … n − 1), in the
        log's edge order."""
        rec, N, k = self.groups["recurrent"], self.n_rec, self.n_out
        y = np.asarray(self.out_mon.y[:]).T
        count = np.asarray(rec.count[:])
        steps = np.rint(np.asarray(self.spike_mon.t_[:]) / (self.params.dt * 1e-3)).astype(np.int64)
        ids = np.asarray(self.spike_mon.i[:]).astype(np.int64)
        # (T, copies · N) per variable, as the monitor stores it: cpp_standalone reads a fresh array from the
        # results file, the runtime device's storage is reused by the next trial (copied)
        fresh = self._compiled
        states = {}
        for name in self._recorded:
            if name != "z":
                a = self.rec_mon.variables[_MONITORED.get(name, name)].get_value()
                states[name] = a if fresh else np.array(a)
                states[name].flags.writeable = False
        raw = (
            self._gradient_arrays()
            if self.gradients
            else self._factorized_arrays()
            if self.factorized
            else None
        )
        results = []
        for b in range(n):
            sel = (ids >= b * N) & (ids < (b + 1) * N)
            res = TrialResult(
                y=y[:, b * k : (b + 1) * k].copy(),
                spike_count=count[b * N : (b + 1) * N].copy(),
                spikes=(steps[sel], ids[sel] - b * N),
            )
            for name, a in states.items():
                # a view of the launch's (T, copies · N) array, read-only: the batch's gradient reads the
                # trials side by side from it without copying (model.signals.side_by_side)
                mine = a[:, b * N : (b + 1) * N]
                setattr(res, name, mine > 0.5 if name == "refractory" else mine)
            if self.record and res.z is None:  # the same 0/1 values as a monitor of z
                res.z = np.zeros((self.n_steps, N))
                res.z[res.spikes] = 1.0
            if raw is not None:
                res.grads, res.esum = self._copy_gradients(raw, b)
                res.regularized = self.factorized  # the binary's gradients include the rate regularizer
            results.append(res)
        if self.update_every:
            m = self.in_trial_mons
            results[0].in_trial = {
                "input": np.asarray(m["input"].w[:]).T[:, self._to_log["input"]],
                "recurrent": np.asarray(m["recurrent"].w[:]).T[:, self._to_log["recurrent"]],
                "output": np.asarray(m["output"].w[:]).T.copy(),
                "feedback": np.asarray(m["output"].B[:]).T.copy(),
                "bias": np.asarray(m["bias"].b[:]).T.copy(),
            }
        if self.adam:
            results[0].adam = self._collect_adam()
        return results

    def _gradient_arrays(self) -> dict:
        """The accumulators of every copy as Brian2 holds them (read once per launch)."""
        raw = {"A": np.asarray(self.groups["recurrent"].A[:]) if self.event_driven else None}
        raw["bias"] = np.asarray(self.groups["readout"].gb[:])
        for key in self.synapses:
            syn = self._elig.get(key, self.synapses[key])
            raw[key] = {"g": np.asarray(syn.g[:])}
            if key != "output":
                raw[key]["ebar"] = np.asarray(syn.ebar[:]) if self.event_driven else None
                raw[key]["esum"] = np.asarray(syn.esum[:]) if self.regularization else None
        return raw

    def _factorized_arrays(self) -> dict:
        """The gradients the binary computed (network/factorized.py), in :meth:`_gradient_arrays`' form."""
        raw: dict = {"A": None, "bias": np.asarray(self.groups["readout"].gb[:])}
        for key, syn in self.synapses.items():
            raw[key] = {"g": np.asarray(syn.g[:])}
        return raw

    def _collect_gradients(self) -> tuple[dict, dict]:
        """Dense gradients per projection (and the bias), and Σ e per synapse (with regularization), of a
        network of one copy."""
        return self._copy_gradients(self._gradient_arrays(), 0)

    def _copy_gradients(self, raw: dict, b: int) -> tuple[dict, dict]:
        """Dense gradients per projection (and the bias), and Σ e per synapse, of copy ``b``."""
        grads, esum = {}, {}
        N = self.n_rec
        for key, (n_pre, n_post) in self._sizes.items():
            src, tgt = self._elig_edges[key]
            part = slice(b * src.size, (b + 1) * src.size)
            g = np.zeros((n_post, n_pre))
            g_syn = raw[key]["g"][part]
            if raw["A"] is not None and key != "output":  # Σ L ē of the steps after each neuron's last event
                g_syn = g_syn + raw["A"][b * N : (b + 1) * N][tgt] * raw[key]["ebar"][part]
            g[tgt, src] = g_syn
            grads[key] = g
            if key != "output" and self.regularization:
                e = np.zeros((n_post, n_pre))
                e[tgt, src] = raw[key]["esum"][part]
                esum[key] = e
        grads["bias"] = raw["bias"][b * self.n_out : (b + 1) * self.n_out].copy()
        return grads, esum

    def _collect_adam(self) -> dict:
        """In-trial Adam's moments after the trial, in edge order."""
        targets = {**self.synapses, "bias": self.groups["readout"]}
        return {
            mom: {
                key: np.asarray(getattr(obj, f"{mom}_adam")[:])[self._to_log[key]]
                if key != "bias"
                else np.asarray(getattr(obj, f"{mom}b_adam")[:]).copy()
                for key, obj in targets.items()
            }
            for mom in ("m", "v")
        }
