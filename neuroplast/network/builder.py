"""Brian2 wiring of the model of docs/model.md (thin: the maths lives in NumPy).

The network implements the *discrete* equations with explicit per-step updates
(no ODE integration), scheduled inside one Brian2 time step as follows::

    thresholds       input:  spike if X(t, i) > 0.5                           (x_t)
    synapses         input → recurrent: I_in += w;  recurrent → recurrent: I_rec += w
                     (the recurrent event space still holds z_{t−1}: its threshold runs later)
    after_synapses   recurrent update (v_t, a_t, r̂_t, ψ_t; z̄ traces), then threshold (z_t),
                     then recurrent → readout: I_out += w
    before_resets    readout: y_t = κ y_{t−1} + c_out I_out + b; loss error;
                     [grad] learning signal L_t = c_out Σ_k B_jk err_k (summed variable)
    resets           z = 1, r = n_ref for neurons that spiked
    before_end       [grad] e_t, ē_t = κ ē_{t−1} + e_t, g += L_t ē_t, Σ e_t, then
                     ε^a_{t+1} = (ρ − βψ_t) ε^a_t + ψ_t z̄_t  (one pass per synapse, or — event-driven —
                     only over synapses onto neurons with ψ_t ≠ 0, the gaps carried by per-neuron
                     factors, docs/model.md §5); readout traces
    start (every k)  [in-trial learning] W ← W − η g (+ the rule's code), g = 0; weight monitors
    end              monitors record v_t, a_t, z_t, ψ_t, y_t, L_t

One :class:`Brian2Network` is compiled once for given sizes, connectivity and
trial length; every trial then sets weights, per-neuron parameters, inputs and
targets without recompiling (runtime: in place; cpp_standalone: ``run_args``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neuroplast.model.connectivity import SYNAPTIC, Connectivity
from neuroplast.model.losses import get_loss
from neuroplast.model.params import ModelParams, Weights
from neuroplast.model.simulator import TrialResult
from neuroplast.model.surrogates import get_surrogate
from neuroplast.network.devices import DEVICES, cache_dir, configure_brian2

__all__ = ["Brian2Network", "TrialResult"]

_ACTIVE_STANDALONE: list[Brian2Network] = []

#: Constants of the in-trial updates, on the recurrent group (input and recurrent synapses read them as
#: ``*_post``) and on the readout group (readout synapses and the bias).
_IN_TRIAL_SHARED = "".join(
    f"\n{name} : 1 (shared)"
    for name in ("in_trial_lr", "in_trial_decay", "adam_b1", "adam_b2", "adam_eps", "adam_t0")
)


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
    device : {"runtime", "cpp_standalone"}
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
    record : bool
        Record v, a, z, ψ, L of every recurrent neuron at every step.
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
        record: bool = True,
        build_dir: str | Path | None = None,
        update_every: int = 0,
        rule_code: dict[str, str] | None = None,
        event_driven: bool | None = None,
        in_trial_optimizer: str = "sgd",
    ) -> None:
        if device not in DEVICES:
            raise ValueError(f"unknown device {device!r} (known: {', '.join(DEVICES)})")
        self.params = params
        self.n_steps = int(n_steps)
        self.device = device
        self.loss = get_loss(loss)
        self.gradients = gradients
        self.regularization = gradients and regularization
        # Without ALIF neurons the per-synapse ε^a is identically 0: leave it out (less memory traffic).
        self.adaptation = bool(np.any(params.beta != 0.0)) if adaptation is None else bool(adaptation)
        self.record = record
        self.n_in, self.n_rec, self.n_out = masks.n_in, masks.n_rec, masks.n_out
        self.connectivity = Connectivity.of(masks)
        #: (source, target) ids of the synaptic projections, in the log's edge order.
        self.edges = {key: self.connectivity.edges[key] for key in SYNAPTIC}
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
        self.adam = bool(self.update_every) and in_trial_optimizer == "adam"
        compact = get_surrogate(params.surrogate).compact
        self.event_driven = bool(gradients and (compact if event_driven is None else event_driven))
        # Synapse order inside Brian2 (``edges`` always keep the log's (source, target) order): spike
        # propagation wants the synapses grouped by source, an eligibility event (event-driven path) wants
        # them grouped by target. So the event-driven path keeps the eligibility state in separate synapse
        # objects grouped by target next to the weights grouped by source ("split"); with in-trial updates,
        # which need w and g in one object, everything is grouped by target. The sweep path: by source.
        self._split = self.event_driven and not self.update_every
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
        self._build()

    # ------------------------------------------------------------------ build
    def _build(self) -> None:
        import brian2 as b2

        configure_brian2()
        if self.device == "cpp_standalone":
            for old in _ACTIVE_STANDALONE:
                old._stale = True
            _ACTIVE_STANDALONE.clear()
            b2.set_device("cpp_standalone", build_on_run=False)
            b2.device.reinit()  # one standalone project per process: start a fresh one
            b2.set_device("cpp_standalone", build_on_run=False)
            b2.prefs.devices.cpp_standalone.openmp_threads = 0
            _ACTIVE_STANDALONE.append(self)
        else:
            b2.set_device("runtime")
            b2.prefs.codegen.target = "cython"
        self._stale = False
        p = self.params
        dt = p.dt * b2.ms
        T = self.n_steps
        b2.defaultclock.dt = dt
        sur = get_surrogate(p.surrogate)

        self.X = b2.TimedArray(np.zeros((T, self.n_in)), dt=dt, name="X_input")
        self.Y = b2.TimedArray(np.zeros((T, self.n_out)), dt=dt, name="Y_target")
        self.M = b2.TimedArray(np.zeros((T, 1)), dt=dt, name="M_mask")
        self._namespace = {"X_input": self.X, "Y_target": self.Y, "M_mask": self.M}

        inp = b2.NeuronGroup(
            self.n_in,
            """
            zbar : 1
            alpha : 1 (shared)
            c_in : 1 (shared)
            """,
            threshold="X_input(t, i) > 0.5",
            name="input",
        )
        rec = b2.NeuronGroup(
            self.n_rec,
            """
            v : 1
            a : 1
            z : 1
            r : 1
            refr : 1
            psi : 1
            I_in : 1
            I_rec : 1
            zbar : 1
            zout : 1
            count : 1
            L : 1
            alpha : 1 (shared)
            c_in : 1 (shared)
            v_th : 1 (shared)
            gamma : 1 (shared)
            kappa : 1 (shared)
            rho : 1
            beta : 1
            n_ref : 1
            """
            + _IN_TRIAL_SHARED
            + (self._LAZY_VARS if self.event_driven else ""),
            threshold="v > v_th + beta * a and refr < 0.5",
            reset="z = 1.0\nr = n_ref\ncount += 1.0",
            events={"psi_active": "psi > 0"} if self.event_driven else None,
            name="recurrent",
        )
        psi_expr = sur.brian2_psi("(v - (v_th + beta * a))")
        rec_update = f"""
        refr = int(r > 0.5)
        r = clip(r - 1.0, 0.0, n_ref)
        zbar = alpha * zbar + c_in * z
        v = alpha * v + c_in * (I_in + I_rec) - v_th * z
        a = rho * a + z
        psi = (1.0 - refr) * {psi_expr}
        z = 0.0
        I_in = 0.0
        I_rec = 0.0
        """
        rec.run_regularly(rec_update, when="after_synapses", order=0, name="recurrent_update")
        rec.thresholder["spike"].when = "after_synapses"
        rec.thresholder["spike"].order = 1
        inp.run_regularly(
            "zbar = alpha * zbar + c_in * X_input(t, i)",
            when="after_synapses",
            order=0,
            name="input_trace",
        )
        out = b2.NeuronGroup(
            self.n_out,
            """
            y : 1
            I_out : 1
            err : 1
            b : 1
            gb : 1
            bf : 1
            expsum : 1
            kappa : 1 (shared)
            c_out : 1 (shared)
            """
            + _IN_TRIAL_SHARED
            + ("\nmb_adam : 1\nvb_adam : 1\n" if self.adam else ""),
            name="readout",
        )
        out.run_regularly(
            "y = kappa * y + c_out * I_out + b\nI_out = 0.0",
            when="before_resets",
            order=0,
            name="readout_update",
        )
        self._objects = [inp, rec, out]
        elig_model = "ebar : 1\ng : 1"
        elig_model += "\neps_a : 1" if self.adaptation else ""
        elig_model += "\nesum : 1" if self.regularization else ""
        syn_model = "w : 1" + ("\n" + elig_model if self.gradients and not self._split else "")
        syn_model += "\nm_adam : 1\nv_adam : 1" if self.adam else ""
        lazy = {}
        if self.event_driven:
            lazy = {
                "on_post": {"elig": self._event_code()},
                "on_event": {"pre": "spike", "elig": "psi_active"},
            }
        if self._split:
            ev = {"on_post": lazy["on_post"], "on_event": {"elig": "psi_active"}}
            e_in = b2.Synapses(inp, rec, elig_model, name="elig_input", **ev)
            e_rec = b2.Synapses(rec, rec, elig_model, name="elig_recurrent", **ev)
            for syn, key in ((e_in, "input"), (e_rec, "recurrent")):
                src, tgt = self._elig_edges[key]
                syn.connect(i=src, j=tgt)
            self._objects += [e_in, e_rec]
            lazy = {}
        s_in = b2.Synapses(inp, rec, syn_model, on_pre="I_in_post += w", name="proj_input", **lazy)
        s_rec = b2.Synapses(rec, rec, syn_model, on_pre="I_rec_post += w", name="proj_recurrent", **lazy)
        self._elig = (
            {"input": e_in, "recurrent": e_rec} if self._split else {"input": s_in, "recurrent": s_rec}
        )
        out_model = "w : 1"
        if self.gradients:
            out_model += "\ng : 1\nB : 1\nL_pre = c_out_post * B * err_post : 1 (summed)"
            out_model += "\nm_adam : 1\nv_adam : 1" if self.adam else ""
        s_out = b2.Synapses(rec, out, out_model, on_pre="I_out_post += w", name="proj_output")
        for syn, key in ((s_in, "input"), (s_rec, "recurrent"), (s_out, "output")):
            src, tgt = self._b2_edges[key]
            syn.connect(i=src, j=tgt)
        s_out.pre.when = "after_synapses"
        s_out.pre.order = 3
        self._objects += [s_in, s_rec, s_out]
        # Loss error (and softmax normaliser) on the readout, after y_t.
        self._objects += self.loss.brian2_objects(b2, out)
        if self.gradients:
            self._gradient_objects(rec, out, s_in, s_rec, s_out)
        if self.update_every:
            self._objects += self._in_trial_objects(b2, out, s_in, s_rec, s_out, dt)
        self.spike_mon = b2.SpikeMonitor(rec, name="rec_spikes")
        self.spike_mon.when = "after_synapses"
        self.spike_mon.order = 2
        self._objects.append(self.spike_mon)
        rec_vars = ["v", "a", "z", "psi", "refr"] + (["L"] if self.gradients else [])
        if self.record:
            self.rec_mon = b2.StateMonitor(rec, rec_vars, record=True, when="end", name="rec_states")
            self._objects.append(self.rec_mon)
        self.out_mon = b2.StateMonitor(out, ["y"], record=True, when="end", name="out_states")
        self._objects.append(self.out_mon)
        self.groups = {"input": inp, "recurrent": rec, "readout": out}
        self.synapses = {"input": s_in, "recurrent": s_rec, "output": s_out}
        self.net = b2.Network(*self._objects)
        self._set_shared(p)
        if self.device == "cpp_standalone":
            self.net.run(T * dt, namespace=self._namespace)
            folder = self._build_dir or (cache_dir() / f"standalone_{id(self)}")
            b2.device.build(directory=str(folder), compile=True, run=False, with_output=False)
            self._device = b2.get_device()
            b2.set_device("runtime")  # leave the process usable for runtime networks
        else:
            self.net.store("initial")

    def _gradient_objects(self, rec, out, s_in, s_rec, s_out) -> None:
        """Eligibility traces, learning signal and gradient accumulators (docs/model.md §3)."""
        # The learning signal is a summed variable of the readout synapses onto their *presynaptic*
        # (recurrent) neurons: each readout synapse k←j holds its feedback weight B_jk next to W_out,kj.
        upd = s_out.summed_updaters["L_pre"]
        upd.when = "before_resets"
        upd.order = 10
        if self.event_driven:
            self._event_objects(rec, self._elig["input"], self._elig["recurrent"])
        else:
            self._sweep_objects(s_in, s_rec)
        rec.run_regularly("zout = kappa * zout + z", when="before_end", order=0, name="zout_trace")
        s_out.run_regularly(
            "g += c_out_post * err_post * zout_pre", when="before_end", order=1, name="grad_output"
        )
        out.run_regularly(
            "bf = kappa * bf + 1.0\ngb += err * bf", when="before_end", order=1, name="grad_bias"
        )

    #: Per-neuron state of the event-driven path: D = κ^(steps since the neuron's last ψ ≠ 0 step),
    #: Dk = κ D (this step's factor), A = Σ over those steps of L_s κ^(s − last), R = ρ^(steps − 1).
    _LAZY_VARS = "\nD : 1\nDk : 1\nA : 1\nR : 1\n"

    def _event_code(self) -> str:
        """Synaptic code at a step t where the postsynaptic ψ_t ≠ 0 (last such step: t_e).

        ``ebar`` holds ē_{t_e} and ``eps_a`` ε^a_{t_e+1}; in between ψ = 0, so e = 0, ē decayed by κ per
        step and ε^a by ρ, and Σ L ē over those steps is ``A_post`` · ē_{t_e}.
        """
        e = "psi_post * (zbar_pre - beta_post * eps_a)" if self.adaptation else "psi_post * zbar_pre"
        code = "g += A_post * ebar\n"
        code += "eps_a = R_post * eps_a\n" if self.adaptation else ""
        code += f"e_t = {e}\n"
        code += "esum += e_t\n" if self.regularization else ""
        code += "ebar = Dk_post * ebar + e_t\ng += L_post * ebar\n"
        if self.adaptation:
            code += "eps_a = (rho_post - beta_post * psi_post) * eps_a + psi_post * zbar_pre\n"
        return code

    def _event_objects(self, rec, s_in, s_rec) -> None:
        """Schedule of the event-driven path inside ``before_end`` (docs/model.md §5)."""
        rec.run_regularly("Dk = kappa * D", when="before_end", order=0, name="lazy_factor")
        rec.thresholder["psi_active"].when = "before_end"
        rec.thresholder["psi_active"].order = 1
        for syn in (s_in, s_rec):
            syn.elig.when = "before_end"
            syn.elig.order = 2
        code = "ev = int(psi > 0)\nA = (A + L * Dk) * (1 - ev)\nD = Dk * (1 - ev) + ev\n"
        code += "R = rho * R * (1 - ev) + ev\n" if self.adaptation else ""
        rec.run_regularly(code, when="before_end", order=3, name="lazy_carry")
        rec.D = 1.0
        rec.R = 1.0

    def _sweep_objects(self, s_in, s_rec) -> None:
        """One pass over all synapses per step (any surrogate)."""
        # At the end of step t: e_t, ē_t, Σ L ē (and Σ e), then ε^a_{t+1} = (ρ − βψ_t) ε^a_t + ψ_t z̄_t for
        # the next step (the same values as updating ε^a at the start of step t+1, in a single sweep).
        e = "psi_post * (zbar_pre - beta_post * eps_a)" if self.adaptation else "psi_post * zbar_pre"
        code = (f"esum += {e}\n" if self.regularization else "") + f"ebar = kappa_post * ebar + {e}\n"
        code += "g += L_post * ebar\n"
        if self.adaptation:
            code += "eps_a = (rho_post - beta_post * psi_post) * eps_a + psi_post * zbar_pre\n"
        for syn, name in ((s_in, "input"), (s_rec, "recurrent")):
            syn.run_regularly(
                code,
                when="before_end",
                order=1,
                name=f"elig_{name}",
            )

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
        head = (
            "active = int(t > t_first_update)\n"
            "eta = in_trial_lr_post * active\n"
            "lam = in_trial_decay_post * active\n"
        ) + self._step_code("g", "_post")
        tail = "w = w + dw\ng = 0.0\n"
        flush = "g = g + A_post * ebar\n" if self.event_driven else ""
        for syn, key, code in (
            (s_in, "input", self.rule_code.get("hidden", "")),
            (s_rec, "recurrent", self.rule_code.get("hidden", "")),
            (s_out, "output", self.rule_code.get("readout", "")),
        ):
            syn.run_regularly(
                (flush if key != "output" else "")
                + head
                + (code.strip() + "\n" if code.strip() else "")
                + tail,
                dt=every,
                when="start",
                order=0,
                name=f"in_trial_{key}",
            )
        out.run_regularly(
            "active = int(t > t_first_update)\neta = in_trial_lr * active\n"
            + self._step_code("gb", "", "mb_adam", "vb_adam")
            + "b = b + dw\ngb = 0.0",
            dt=every,
            when="start",
            order=0,
            name="in_trial_bias",
        )
        if self.event_driven:  # the gaps' Σ L ē went into the update: restart them
            s_in.target.run_regularly("A = 0.0", dt=every, when="start", order=1, name="in_trial_lazy_reset")

        def mon(group, variables, name):
            return b2.StateMonitor(group, variables, record=True, dt=every, when="start", order=2, name=name)

        self.in_trial_mons = {
            "input": mon(s_in, "w", "w_in_mon"),
            "recurrent": mon(s_rec, "w", "w_rec_mon"),
            "output": mon(s_out, ["w", "B"], "w_out_mon"),
            "bias": mon(out, "b", "b_mon"),
        }
        return list(self.in_trial_mons.values())

    def _step_code(self, g: str, sfx: str, m: str = "m_adam", v: str = "v_adam") -> str:
        """``dw`` of the in-trial optimizer for gradient ``g`` (``sfx``: where η and Adam's constants live).

        SGD: dw = −η g. Adam (Kingma & Ba, bias-corrected, as :class:`neuroplast.plasticity.optim.Adam`):
        per-synapse moments, step number = the optimizer's count before the trial + this update's index; the
        ``active`` flag leaves the moments untouched at the clock's first tick (t = 0).
        """
        if not self.adam:
            return f"dw = -eta * {g}\n"
        b1, b2, eps, t0 = (f"adam_{k}{sfx}" for k in ("b1", "b2", "eps", "t0"))
        return (
            f"n_adam = {t0} + floor(t / t_update_period + 0.5) + (1 - active)\n"
            f"{m} = active * ({b1} * {m} + (1 - {b1}) * {g}) + (1 - active) * {m}\n"
            f"{v} = active * ({b2} * {v} + (1 - {b2}) * {g} * {g}) + (1 - active) * {v}\n"
            f"mhat = {m} / (1 - {b1} ** n_adam)\n"
            f"vhat = {v} / (1 - {b2} ** n_adam)\n"
            f"dw = -eta * mhat / (sqrt(vhat) + {eps})\n"
        )

    # ---------------------------------------------------------- per-trial I/O
    def _set_shared(self, p: ModelParams) -> None:
        inp, rec, out = self._objects[:3]
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
            raise RuntimeError(
                "this cpp_standalone network was superseded by a newer one in the same "
                "process (Brian2 has one standalone device); rebuild it"
            )

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
        import brian2 as b2

        self._check_usable()
        T = self.n_steps
        x = np.asarray(x, dtype=float)
        if x.shape != (T, self.n_in):
            raise ValueError(f"x must have shape ({T}, {self.n_in}), got {x.shape}")
        if not np.all((x == 0.0) | (x == 1.0)):
            raise ValueError("Brian2 inputs are spikes: x must contain only 0 and 1")
        p = params or self.params
        self._check_fixed(p)
        tgt = np.zeros((T, self.n_out)) if target is None else np.asarray(target, float)
        msk = np.ones(T) if mask is None else np.asarray(mask, float)
        fbk = weights.w_out.T if feedback is None else np.asarray(feedback, float)
        w = {
            "input": weights.w_in,
            "recurrent": weights.w_rec,
            "output": weights.w_out,
        }
        values = {}
        for key, syn in self.synapses.items():
            src, tgt_ids = self._b2_edges[key]
            values[syn.w] = np.ascontiguousarray(w[key][tgt_ids, src], dtype=float)
        rec, out = self.groups["recurrent"], self.groups["readout"]
        values[rec.rho] = np.asarray(p.rho, float)
        values[rec.beta] = np.asarray(p.beta, float)
        values[rec.n_ref] = np.full(self.n_rec, float(p.n_ref))
        values[out.b] = np.asarray(weights.b_out, float)
        if self.update_every:
            eta_out = learning_rate if output_learning_rate is None else output_learning_rate
            values[rec.in_trial_lr] = np.asarray(float(learning_rate))
            values[rec.in_trial_decay] = np.asarray(float(weight_decay))
            values[out.in_trial_lr] = np.asarray(float(eta_out))
            values[out.in_trial_decay] = np.asarray(float(weight_decay))
        if self.adam:
            self._adam_values(values, adam or {}, rec, out)
        if self.gradients:
            src, tgt_ids = self.edges["output"]
            values[self.synapses["output"].B] = np.ascontiguousarray(fbk[src, tgt_ids], dtype=float)
        arrays = {self.X: x, self.Y: tgt}
        if self.loss.uses_mask:
            arrays[self.M] = msk[:, None]
        if self.device == "cpp_standalone":
            run_args = dict(values)
            run_args.update(arrays)
            self._device.run(run_args=run_args, with_output=False)
        else:
            b2.set_device("runtime")
            self.net.restore("initial")
            for view, val in values.items():
                view[:] = val
            for ta, val in arrays.items():
                ta.values[:] = val
            self.net.run(T * p.dt * b2.ms, namespace=self._namespace)
        return self._collect()

    def _adam_values(self, values: dict, adam: dict, rec, out) -> None:
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

    def _collect(self) -> TrialResult:
        rec = self.groups["recurrent"]
        res = TrialResult(
            y=np.asarray(self.out_mon.y[:]).T.copy(),
            spike_count=np.asarray(rec.count[:]).copy(),
            spikes=(
                np.rint(np.asarray(self.spike_mon.t_[:]) / (self.params.dt * 1e-3)).astype(np.int64),
                np.asarray(self.spike_mon.i[:]).astype(np.int64),
            ),
        )
        if self.record:
            m = self.rec_mon
            res.v, res.a, res.z, res.psi = (
                np.asarray(getattr(m, k)[:]).T.copy() for k in "v a z psi".split()
            )
            res.refractory = np.asarray(m.refr[:]).T > 0.5
            if self.gradients:
                res.L = np.asarray(m.L[:]).T.copy()
        if self.gradients:
            res.grads, res.esum = {}, {}
            shapes = {
                "input": (self.n_rec, self.n_in),
                "recurrent": (self.n_rec, self.n_rec),
                "output": (self.n_out, self.n_rec),
            }
            A = np.asarray(rec.A[:]) if self.event_driven else None
            for key in self.synapses:
                syn = self._elig.get(key, self.synapses[key])
                src, tgt = self._elig_edges[key]
                g = np.zeros(shapes[key])
                g_syn = np.asarray(syn.g[:])
                if A is not None and key != "output":  # Σ L ē of the steps after each neuron's last event
                    g_syn = g_syn + A[tgt] * np.asarray(syn.ebar[:])
                g[tgt, src] = g_syn
                res.grads[key] = g
                if key != "output" and self.regularization:
                    e = np.zeros(shapes[key])
                    e[tgt, src] = np.asarray(syn.esum[:])
                    res.esum[key] = e
            res.grads["bias"] = np.asarray(self.groups["readout"].gb[:]).copy()
        if self.update_every:
            m = self.in_trial_mons
            res.in_trial = {
                "input": np.asarray(m["input"].w[:]).T[:, self._to_log["input"]],
                "recurrent": np.asarray(m["recurrent"].w[:]).T[:, self._to_log["recurrent"]],
                "output": np.asarray(m["output"].w[:]).T.copy(),
                "feedback": np.asarray(m["output"].B[:]).T.copy(),
                "bias": np.asarray(m["bias"].b[:]).T.copy(),
            }
        if self.adam:
            targets = {**self.synapses, "bias": self.groups["readout"]}
            res.adam = {
                mom: {
                    key: np.asarray(getattr(obj, f"{mom}_adam")[:])[self._to_log[key]]
                    if key != "bias"
                    else np.asarray(getattr(obj, f"{mom}b_adam")[:]).copy()
                    for key, obj in targets.items()
                }
                for mom in ("m", "v")
            }
        return res
