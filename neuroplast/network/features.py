"""The optional parts of a :class:`~neuroplast.network.builder.Brian2Network`: learning inside a trial
(docs/model.md §6), many trials per launch with the optimizer step at each boundary (§7), and the
factorized gradient computed inside the binary after the run (§9)."""

from __future__ import annotations

from neuroplast.network import equations as eq
from neuroplast.network import factorized as fz
from neuroplast.network.headers import header_kwds, header_stamp


class Features:
    """In-trial updates, chunk boundaries and the compiled factorized gradient: objects and code."""

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
        update = eq.slot("in_trial_update")
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
                eq.IN_TRIAL_LAZY_RESET, dt=every, name="in_trial_lazy_reset", **eq.slot("in_trial_lazy_reset")
            )

        def mon(group, variables, name):
            return self._monitor(
                b2, group, variables, name, self.update_every, dt=every, **eq.slot("in_trial_monitor")
            )

        self.in_trial_mons = {
            "input": mon(s_in, "w", "w_in_mon"),
            "recurrent": mon(s_rec, "w", "w_rec_mon"),
            "output": mon(s_out, ["w", "B"], "w_out_mon"),
            "bias": mon(out, "b", "b_mon"),
        }
        return self._brian2_objects(self.in_trial_mons.values())

    def _chunk_functions(self, b2) -> None:
        """The C++ functions of the boundary update (:data:`.equations.CHUNK_FUNCTIONS`), by name."""
        for name, (code, n_args) in eq.CHUNK_FUNCTIONS.items():
            fn = b2.Function(
                None, arg_units=[1] * n_args, return_unit=1, arg_names=[f"a{k}" for k in range(n_args)]
            )
            fn.implementations.add_implementation("cpp", code, name=name)
            self._namespace[name] = fn

    def _batch_mean_functions(self, b2, out, s_in, s_rec, s_out) -> dict[str, str]:
        """The batch's mean gradient of each projection and the bias at a boundary of a network of several
        copies (:func:`.equations.batch_mean_function`), by key: the names of the C++ functions (none for
        one copy)."""
        self._batch_mean_code = {}
        if self.batch == 1:
            return {}
        device = b2.get_device()
        where = {
            "input": (s_in, "gt", None),
            "recurrent": (s_rec, "gt", None),
            "output": (s_out, "g", None),
            "bias": (out, "gb", self.batch * self.n_out),
        }
        names = {}
        for key, (obj, var, size) in where.items():
            var = "g" if self.factorized and key != "bias" else var  # the binary's gradient, whole
            name = f"np_batch_mean_{key}"
            array = device.get_array_name(obj.variables[var], access_data=size is not None)
            code = eq.batch_mean_function(name, array, self.batch, size)
            fn = b2.Function(
                None,
                arg_units=[1, 1],
                return_unit=1,
                arg_names=["n", "on"],
                stateless=False,
                auto_vectorise=True,
            )
            fn.implementations.add_implementation("cpp", code, name=name)
            self._namespace[name] = fn
            self._batch_mean_code[key] = code
            names[key] = name
        return names

    def _chunk_objects(self, b2, inp, rec, out, s_in, s_rec, s_out, dt) -> list:
        """Trial boundaries inside one launch (docs/model.md §7): gradient, optimizer step, monitors, reset.

        The boundary clock ticks at t = 0, T, 2T, …; at t = 0 (``active`` = 0) the update leaves every
        variable unchanged, so a launch of K trials takes K − 1 steps inside; the last trial's gradient is
        read from the state at the end (as after a single trial).  The online path completes each
        synapse's accumulated gradient into ``gt`` here; the factorized one (:attr:`factorized`) has the
        binary compute the whole gradient ``g`` in the same slot (:meth:`_factorized_boundary`).
        """
        self._chunk_functions(b2)
        means = self._batch_mean_functions(b2, out, s_in, s_rec, s_out)
        period = self.n_steps * dt
        self._namespace["t_first_update"] = 0.5 * dt
        self._namespace["t_update_period"] = period
        kw = {"dt": period}
        grad = "g" if self.factorized else "gt"  # what the input and recurrent synapses' step reads
        if not self.factorized:
            rec.run_regularly(
                eq.CHUNK_REGULARIZATION, name="chunk_reg", **kw, **eq.slot("chunk_regularization")
            )
        code = eq.chunk_gradient(self.event_driven, self.regularization)
        for syn, key in ((s_in, "input"), (s_rec, "recurrent")):
            if not self.factorized:
                syn.run_regularly(code, name=f"chunk_grad_{key}", **kw, **eq.slot("chunk_gradient"))
            syn.run_regularly(
                eq.chunk_update(self.chunk_optimizer, grad, mean=means.get(key)),
                name=f"chunk_update_{key}",
                **kw,
                **eq.slot("chunk_update"),
            )
        s_out.run_regularly(
            eq.chunk_update(self.chunk_optimizer, "g", feedback=True, mean=means.get("output")),
            name="chunk_update_output",
            **kw,
            **eq.slot("chunk_update"),
        )
        out.run_regularly(
            eq.chunk_bias_update(self.chunk_optimizer, mean=means.get("bias")),
            name="chunk_update_bias",
            **kw,
            **eq.slot("chunk_update"),
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
            code = eq.chunk_reset(
                group,
                adaptation=self.adaptation,
                regularization=self.regularization,
                factorized=self.factorized,
            )
            obj.run_regularly(code, name=f"chunk_reset_{k}", **kw, **eq.slot("chunk_reset"))

        def mon(group, variables, name, slot):
            return self._monitor(b2, group, variables, name, self.n_steps, dt=period, **eq.slot(slot))

        self.chunk_grad_mons = {
            "input": mon(s_in, grad, "chunk_g_in", "chunk_grad_monitor"),
            "recurrent": mon(s_rec, grad, "chunk_g_rec", "chunk_grad_monitor"),
            "output": mon(s_out, "g", "chunk_g_out", "chunk_grad_monitor"),
            "bias": mon(out, "gb", "chunk_g_bias", "chunk_grad_monitor"),
        }
        self.chunk_weight_mons = {
            "input": mon(s_in, "w", "chunk_w_in", "chunk_weight_monitor"),
            "recurrent": mon(s_rec, "w", "chunk_w_rec", "chunk_weight_monitor"),
            "output": mon(s_out, "w", "chunk_w_out", "chunk_weight_monitor"),
            "bias": mon(out, "b", "chunk_w_bias", "chunk_weight_monitor"),
            # B of every trial: the trainer checks the simulation's feedback step against NumPy's too
            "feedback": mon(s_out, "B", "chunk_b_out", "chunk_weight_monitor"),
        }
        return self._brian2_objects([*self.chunk_grad_mons.values(), *self.chunk_weight_mons.values()])

    def _factorized_monitors(self, b2, inp, rec, out) -> list:
        """What the gradients computed in the binary read and nothing else does: the input spikes and the loss
        error of every step (monitors emptied by the gradient code before the results are written), and ψ's
        nonzero values (the record of :data:`.factorized.PSI_HEADER`)."""
        slot = eq.slot("state_monitor")
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

    def _factorized_boundary(self, b2) -> list:
        """The chunked engine's boundary on the factorized path: a group of one element that calls
        :data:`.factorized.BOUNDARY_FUNCTION` at every boundary tick (slot ``chunk_gradient``, before the
        gradient monitors and the optimizer step): the finished trial's gradients, computed by the binary
        as after a run (docs/model.md §9)."""
        #: The C++ of the boundary's gradients (part of the build's cache key).
        self._boundary_code = fz.boundary_code(
            self._factorized_names(b2), self._factorized_sizes(), min_work=fz.MIN_THREAD_WORK
        )
        kwds = {
            "headers": [*fz.BOUNDARY_SYSTEM_HEADERS, *header_kwds(fz.PSI_HEADER)["headers"]]
            + header_kwds(fz.THREADS_HEADER)["headers"],
            "include_dirs": header_kwds(fz.PSI_HEADER)["include_dirs"],
        }
        fn = b2.Function(None, arg_units=[1], return_unit=1, arg_names=["active"], stateless=False)
        fn.implementations.add_implementation(
            "cpp",
            header_stamp(fz.PSI_HEADER) + header_stamp(fz.THREADS_HEADER) + self._boundary_code,
            name=fz.BOUNDARY_FUNCTION,
            compiler_kwds=kwds,
        )
        self._namespace[fz.BOUNDARY_FUNCTION] = fn
        group = b2.NeuronGroup(1, "done : 1", name="grad_boundary")
        group.run_regularly(
            f"done = {fz.BOUNDARY_FUNCTION}(int(t > t_first_update))",
            dt=self.n_steps * self.params.dt * b2.ms,
            name="grad_boundary_gradient",
            **eq.slot("chunk_gradient"),
        )
        return [group]

    def _factorized_code(self, b2) -> str:
        """The C++ of the gradients (:func:`.factorized.gradient_code`) with this network's array names."""
        return fz.gradient_code(
            self._factorized_names(b2),
            self._factorized_sizes(),
            clear=("err", "in_i", "in_t"),
            min_work=fz.MIN_THREAD_WORK,
        )

    def _factorized_sizes(self) -> fz.Sizes:
        """The sizes the factorized gradient code is generated for (copies, groups, steps, threads)."""
        return fz.Sizes(self.batch, self.n_in, self.n_rec, self.n_out, self.n_steps, self.threads)

    def _factorized_names(self, b2) -> dict[str, str]:
        """The device's name of every array of :data:`.factorized.ARRAYS` in this network."""
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
        return {
            k: device.get_array_name(obj.variables[v], access_data=False) for k, (obj, v) in where.items()
        }
