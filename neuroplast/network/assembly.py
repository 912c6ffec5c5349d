"""Assembly of a :class:`~neuroplast.network.builder.Brian2Network`: its groups, projections, loss
objects and monitors, made from the equations (:mod:`.equations`) in a fixed order, each in its slot of
the within-step schedule.  One job of the network: what exists in the simulation, not how it runs."""

from __future__ import annotations

import numpy as np

from neuroplast.model.params import ModelParams
from neuroplast.model.surrogates import get_surrogate
from neuroplast.network import equations as eq
from neuroplast.network.edges import edge_functions, edge_table
from neuroplast.network.headers import header_kwds, header_stamp
from neuroplast.network.records import RECORD, SynapseRecord, add_record, record_function

#: Recurrent variables a network can record at every step (``record``), as :class:`TrialResult` names them.
RECORDABLE = ("v", "a", "z", "psi", "refractory", "L")
#: TrialResult name -> Brian2 variable, where they differ (a neuron model's state variable s: ``h_s``).
MONITORED = {"refractory": "refr"}


def _index(order: np.ndarray) -> np.ndarray:
    """A permutation of edges as int32 (4 bytes per synapse instead of 8; the same indices)."""
    return order.astype(np.int32) if order.size < 2**31 else order


class Assembly:
    """The Brian2 objects of the model: input, recurrent and readout groups, their projections (B copies
    side by side), the loss error, the optional eligibility objects, the monitors."""

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
        self._elig_to_log: dict[str, np.ndarray] = {}
        #: Row-major flat indices of each projection's synapses in Brian2's order (``Values._in_b2_order``).
        self._b2_flat: dict[str, np.ndarray] = {}
        #: The end Brian2's synapses are grouped by ("pre": the log's order, "post": by target), per key.
        self._b2_outer, self._elig_outer = {}, {}
        for key, (src, tgt) in self.edges.items():
            grouped = self.event_driven and not self._split and key != "output"
            split = self._split and key != "output"
            by_target = _index(np.lexsort((src, tgt))) if grouped or split else None
            if grouped:
                order = by_target
                self._b2_edges[key] = (src[order], tgt[order])
                self._to_log[key] = _index(np.argsort(order, kind="stable"))
            else:  # the log's order itself: the edge lists shared, one identity for both directions
                order = _index(np.arange(src.size))
                self._b2_edges[key] = (src, tgt)
                self._to_log[key] = order
            self._b2_outer[key] = "post" if grouped else "pre"
            self._from_log[key] = order
            self._elig_edges[key] = (src[by_target], tgt[by_target]) if split else self._b2_edges[key]
            #: eligibility (gradient) order → the log's edge order
            elig_to_log = _index(np.argsort(by_target, kind="stable")) if split else self._to_log[key]
            self._elig_to_log[key] = elig_to_log
            self._elig_outer[key] = "post" if split else self._b2_outer[key]
        #: The projections whose Brian2 (eligibility) order is the log's: read back without a permutation.
        self._in_log_order = {k for k, perm in self._to_log.items() if _identity(perm)}
        self._elig_in_log_order = {k for k, perm in self._elig_to_log.items() if _identity(perm)}

    def _copies(self, src: np.ndarray, tgt: np.ndarray, n_src: int, n_tgt: int) -> tuple:
        """Synapse ids of all copies (:attr:`batch`): copy b's are copy 0's shifted by b neurons of each
        side, one copy after the other, so that every copy keeps copy 0's synapse order."""
        shift = np.arange(self.batch)[:, None]
        return (src[None, :] + shift * n_src).ravel(), (tgt[None, :] + shift * n_tgt).ravel()

    def _connect(self, b2, syn, edges: tuple, sizes: tuple[int, int], outer: str) -> None:
        """Create the synapses ``edges`` (copy 0's, in Brian2's order, grouped by ``outer``) of every copy.

        A compiled network with neuroplast's C++ functions (``cpp_functions``) reads them at launch from a
        table of its results folder (:mod:`.edges`): the program holds the table's number, not the edges, so
        that another connectivity (another seed of a sparse network) runs the same build.  Any other device
        connects the arrays themselves (a standalone program without those functions compiles them in).
        """
        i, j = self._copies(*edges, *sizes)
        self._n_synapses[syn.name] = len(i)
        if not self._tables:
            syn.connect(i=i, j=j)
            return
        B = self.batch
        table = edge_table(len(self._edge_tables), syn.name, i, j, (B * sizes[0], B * sizes[1]), outer)
        b2.get_device().insert_code("main", table.load_code("brian::results_dir"))  # before the synapses
        self._edge_tables.append(table)
        syn.connect(**table.generator(), namespace=self._edge_functions)

    def _monitor(self, b2, group, variables, name: str, period_steps: int, **kw):
        """A monitor of every element of ``group`` at every tick of a clock of ``period_steps`` steps (``kw``:
        its ``dt``, ``when``, ``order``; the period is ``t_update_period`` of the namespace).

        A ``StateMonitor``, but for the synapses of a compiled network a :class:`.records.SynapseRecord`:
        their number is learned at launch, and a monitor would compile it in (:mod:`.records`).  Only
        Brian2 objects go into the network (:meth:`_brian2_objects`).
        """
        variables = [variables] if isinstance(variables, str) else list(variables)
        if not self._tables or group.name not in self._n_synapses:
            return b2.StateMonitor(group, variables, record=True, name=name, **kw)
        self._namespace.setdefault(RECORD, record_function(b2))
        steps = self.n_steps * max(1, self.chunk)
        record = add_record(
            b2,
            group,
            variables,
            slot=self._n_records,
            rows=-(-steps // period_steps),
            period="t_update_period",
            folder=self._results_folder,
            name=name,
            **kw,
        )
        self._n_records += len(variables)
        return record

    @staticmethod
    def _brian2_objects(monitors) -> list:
        """The Brian2 objects among ``monitors`` (a record is its synapses' ``run_regularly``)."""
        return [m for m in monitors if not isinstance(m, SynapseRecord)]

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
        with self._compilers():  # the runtime device compiles as objects are created (connect, values)
            self._assemble(b2)

    def _assemble(self, b2) -> None:
        """The objects, the network and its compile (or stored state), in :meth:`_build`'s fixed order."""
        #: The C++ records of the monitors of every synapse (:meth:`_monitor`).
        self._n_records = 0
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
        if self.factorized and self.chunk:  # the finished trial's gradient at every boundary
            self._objects += self._factorized_boundary(b2)
        self.net = b2.Network(*self._objects)
        self._set_shared(p)
        self._compile(b2, self.n_steps * max(1, self.chunk) * dt)

    def _timed_arrays(self, b2, dt) -> None:
        """Inputs X (the runtime device's TimedArray, cpp_standalone's byte table), targets Y* and the
        recall-window mask, set per trial."""
        T, B = self.n_steps * max(1, self.chunk), self.batch
        self.Y = b2.TimedArray(np.zeros((T, B * self.n_out)), dt=dt, name="Y_target")
        self.M = b2.TimedArray(np.zeros((T, 1 if B == 1 else B * self.n_out)), dt=dt, name="M_mask")
        self._namespace = {"Y_target": self.Y, "M_mask": self.M}
        if self._tables:  # each launch's inputs from a byte table (:data:`.equations.INPUT_X`)
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
        x = eq.INPUT_X["table" if self._tables else "timed_array"]
        code = self.model_code  # a neuron model other than alif (None: the LIF/ALIF network)
        inp = b2.NeuronGroup(
            B * self.n_in,
            eq.INPUT_MODEL + (eq.MODEL_INPUT_MODEL + code.input_group if code is not None else ""),
            threshold=eq.input_threshold(x),
            name="input",
        )
        surrogate = get_surrogate(self.params.surrogate)
        if code is None:
            model = eq.recurrent_model(self.event_driven)
            model += eq.CHUNK_SHARED if self.chunk else eq.REG_SHARED if self.factorized else ""
            threshold = eq.RECURRENT_THRESHOLD
            update = eq.recurrent_update(surrogate, traces=self.gradients)
        else:
            model = eq.model_recurrent_model(code.group)
            threshold = eq.model_threshold(code.threshold_distance)
            update = eq.model_recurrent_update(
                surrogate, code.update, code.threshold_distance, code.after_psi
            )
        rec = b2.NeuronGroup(
            B * self.n_rec,
            model,
            threshold=threshold,
            reset=eq.RECURRENT_RESET,
            events={"psi_active": eq.PSI_EVENT} if self.event_driven else None,
            name="recurrent",
        )
        if self._compiled and self.capabilities.cpp_functions:  # Brian2's clip and int(x > a), branch-free
            update = eq.branch_free(update)
            clip = b2.Function(
                None, arg_units=[1, 1, 1], return_unit=1, arg_names=["value", "a_min", "a_max"]
            )
            clip.implementations.add_implementation("cpp", eq.CLIP_CPP, name=eq.CLIP_FUNCTION)
            self._namespace[eq.CLIP_FUNCTION] = clip
            above = b2.Function(None, arg_units=[1, 1], return_unit=1, arg_names=["x", "a"])
            above.implementations.add_implementation("cpp", eq.ABOVE_CPP, name=eq.ABOVE_FUNCTION)
            self._namespace[eq.ABOVE_FUNCTION] = above
        rec.run_regularly(update, name="recurrent_update", **eq.slot("recurrent_update"))
        eq.schedule(rec.thresholder["spike"], "recurrent_threshold")
        eq.schedule(rec.resetter["spike"], "recurrent_reset")
        if self.gradients:  # z̄ (a model's c_in x) of the inputs: only the online gradient reads it
            trace = eq.input_trace(x) if code is None else eq.model_input_trace(x) + "\n" + code.input_update
            inp.run_regularly(trace, name="input_trace", **eq.slot("input_trace"))
            if code is not None and code.post_update:  # a rule's own postsynaptic trace variables
                rec.run_regularly(code.post_update, name="trace_post", **eq.slot("trace_post"))
        eq.schedule(inp.thresholder["spike"], "input_threshold")
        out = b2.NeuronGroup(B * self.n_out, eq.readout_model(self.adam, bool(self.chunk)), name="readout")
        out.run_regularly(eq.READOUT_UPDATE, name="readout_update", **eq.slot("readout_update"))
        return inp, rec, out

    def _projections(self, b2, inp, rec, out) -> tuple:
        """Input, recurrent and readout synapses (and, split, the eligibility synapses grouped by target)."""
        #: Synapses per Brian2 synapse object (the size of its variables, which standalone Brian2 leaves 0).
        self._n_synapses: dict[str, int] = {}
        #: A compiled network's synapse tables (:mod:`.edges`) and their functions.
        self._edge_tables: list = []
        self._edge_functions = edge_functions(b2) if self._tables else {}
        elig_model = (
            eq.eligibility_model(self.adaptation, self.regularization)
            if self.model_code is None
            else self.model_code.synapse
        )
        syn_model = eq.projection_model(elig_model if self.gradients and not self._split else None, self.adam)
        if self.factorized:  # the gradient the binary computes (and, with chunks, the boundary steps on)
            syn_model += "\ng : 1" + (eq.CHUNK_TRAIN if self.chunk else "")
        elif self.chunk:  # the finished trial's gradient, completed at the boundary
            syn_model += "\ngt : 1" + eq.CHUNK_TRAIN
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
                self._connect(b2, syn, self._elig_edges[key], self._sizes[key], self._elig_outer[key])
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
            eq.output_model(self.gradients, self.adam, self.factorized)
            + (eq.CHUNK_TRAIN if self.chunk else ""),
            on_pre=eq.ON_PRE["output"],
            name="proj_output",
            delay=0 * b2.ms,
        )
        for syn, key in ((s_in, "input"), (s_rec, "recurrent"), (s_out, "output")):
            self._connect(b2, syn, self._b2_edges[key], self._sizes[key], self._b2_outer[key])
            eq.schedule(syn.pre, f"{key}_propagation")
        self._objects += [s_in, s_rec, s_out]
        return s_in, s_rec, s_out

    def _gradient_objects(self, rec, out, s_in, s_rec, s_out) -> None:
        """Eligibility traces, learning signal and gradient accumulators (docs/model.md §3)."""
        eq.schedule(s_out.summed_updaters["L_pre"], "learning_signal")
        if self.event_driven:
            self._event_objects(rec, self._elig["input"], self._elig["recurrent"])
        else:
            self._sweep_objects(s_in, s_rec)
        rec.run_regularly(eq.ZOUT_TRACE, name="zout_trace", **eq.slot("zout_trace"))
        s_out.run_regularly(eq.GRAD_OUTPUT, name="grad_output", **eq.slot("grad_output"))
        out.run_regularly(eq.GRAD_BIAS, name="grad_bias", **eq.slot("grad_bias"))

    def _event_objects(self, rec, s_in, s_rec) -> None:
        """The event-driven path inside ``before_end`` (docs/model.md §5)."""
        rec.run_regularly(eq.LAZY_FACTOR, name="lazy_factor", **eq.slot("lazy_factor"))
        eq.schedule(rec.thresholder["psi_active"], "psi_event")
        for syn in (s_in, s_rec):
            eq.schedule(syn.elig, "eligibility_event")
        rec.run_regularly(eq.lazy_carry(self.adaptation), name="lazy_carry", **eq.slot("lazy_carry"))
        rec.D = 1.0
        rec.R = 1.0

    def _sweep_objects(self, s_in, s_rec) -> None:
        """One pass over all synapses per step (any surrogate)."""
        if self.model_code is None:
            code = eq.eligibility_sweep(self.adaptation, self.regularization)
        else:
            code = self.model_code.sweep
        for syn, name in ((s_in, "input"), (s_rec, "recurrent")):
            syn.run_regularly(code, name=f"elig_{name}", **eq.slot("eligibility_sweep"))

    def _monitors(self, b2, rec, out) -> list:
        """Recurrent spikes, the recorded recurrent states (when ``record``) and the readout."""
        self.spike_mon = b2.SpikeMonitor(rec, name="rec_spikes")
        eq.schedule(self.spike_mon, "spike_monitor")
        monitors = [self.spike_mon]
        # z is never monitored as a state: the spike monitor gives the same 0/1 values (T × N fewer doubles
        # to record, write and read back per copy).
        rec_vars = [self.monitored.get(k, k) for k in self._recorded if k != "z"]
        if rec_vars:
            self.rec_mon = b2.StateMonitor(
                rec, rec_vars, record=True, name="rec_states", **eq.slot("state_monitor")
            )
            monitors.append(self.rec_mon)
        self.out_mon = b2.StateMonitor(out, ["y"], record=True, name="out_states", **eq.slot("state_monitor"))
        return monitors + [self.out_mon]

    def _set_shared(self, p: ModelParams) -> None:
        inp, rec, out = self.groups.values()
        inp.alpha = p.alpha
        inp.c_in = p.input_scale
        if self.model_code is None:
            rec.alpha = p.alpha
        rec.c_in = p.input_scale
        rec.v_th = p.v_th
        rec.gamma = p.gamma
        rec.kappa = p.kappa
        out.kappa = p.kappa
        out.c_out = p.readout_scale


def _identity(perm: np.ndarray) -> bool:
    """Whether the permutation ``perm`` leaves every element where it is (a copy by it would be wasted)."""
    return bool(perm.size == 0 or (perm[0] == 0 and np.all(np.diff(perm) == 1)))
