"""The model of docs/model.md as a Brian2 network: :class:`Brian2Network`, compiled once, run trial by trial.

The maths lives in NumPy (:mod:`neuroplast.model.dynamics`); the Brian2 statements and the within-step
schedule (which operation runs in which ``when`` slot and ``order``) in :mod:`neuroplast.network.equations`.

One :class:`Brian2Network` is compiled once for given sizes, connectivity and trial length; every trial
then sets weights, per-neuron parameters, inputs and targets without recompiling (runtime: in place;
cpp_standalone: run arguments of a launch).  A cpp_standalone program does not depend on the connectivity
either: its synapses are read at launch (:mod:`.edges`) and the monitors of every synapse sized then
(:mod:`.records`), so a network of other masks (a new seed of a sparse network) reuses the build.  The
class is split by job, one module each:

* :mod:`.assembly` — groups, projections, loss objects, monitors;
* :mod:`.features` — in-trial updates, chunk boundaries, the factorized gradient inside the binary;
* :mod:`.launch` — device, compile and cache, one launch (through :mod:`.engine`'s device);
* :mod:`.values` — what a launch is given, checked against what was built;
* :mod:`.readback` — monitors and accumulators split into per-trial results.

This module holds the options (the constructor) and the three ways to run: :meth:`run_trial`,
:meth:`run_batch`, :meth:`run_chunk`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from neuroplast.devices import device_info
from neuroplast.gradients.traces import Trace
from neuroplast.model.connectivity import SYNAPTIC, Connectivity
from neuroplast.model.losses import get_loss
from neuroplast.model.neurons import DEFAULT_NEURON, NeuronModel
from neuroplast.model.params import ModelParams, Weights
from neuroplast.model.simulator import TrialResult
from neuroplast.model.surrogates import get_surrogate
from neuroplast.network import equations as eq
from neuroplast.network.assembly import MONITORED, RECORDABLE, Assembly
from neuroplast.network.devices import BRIAN2_DEVICES
from neuroplast.network.features import Features
from neuroplast.network.launch import INPUT_TABLE_FILE, Launch
from neuroplast.network.model_code import model_code, state_variable
from neuroplast.network.readback import Readback
from neuroplast.network.values import Values

__all__ = ["Brian2Network", "TrialResult", "RECORDABLE", "MONITORED", "INPUT_TABLE_FILE"]


class Brian2Network(Assembly, Features, Launch, Values, Readback):
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
        (:data:`.devices.BRIAN2_DEVICES`: ``"runtime"``, ``"cpp_standalone"``, ``"cuda_standalone"``).
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
        every state variable goes back to rest.  cpp_standalone only; needs ``gradients`` (or
        ``factorized``), no in-trial updates and no recording.  0: one trial per launch (:meth:`run_trial`).
    chunk_optimizer : {"sgd", "adam", "adam-nest"}
        The optimizer of the boundary steps (the Adams keep their moments per synapse).
    batch : int
        B ≥ 1 trials side by side in one launch (:meth:`run_batch`, docs/model.md §8): B copies of every
        group and projection, sharing the weights, each copy fed its own trial. Each copy computes
        exactly what a network of one copy computes for its trial (the same operations in the same
        order). B > 1 needs ``update_every`` = 0; with ``chunk_trials`` = K a launch runs K iterations of B
        trials side by side, the optimizer stepping on the batch's mean gradient at every boundary.
    threads : int
        OpenMP threads of the cpp_standalone binary (default 1); the results are the same for every value.
    factorized : bool
        cpp_standalone only, without ``gradients`` or in-trial updates: the binary computes every
        trial's factorized e-prop gradient after the run — and, with ``chunk_trials``, the finished
        trial's at every boundary, where the optimizer steps on it (:mod:`neuroplast.network.factorized`,
        docs/model.md §7, §9) — the learning signal c_out B err with this launch's ``feedback``, the rate
        regularizer of ``reg`` included — and returns it in :attr:`TrialResult.grads` (``regularized``); ψ
        never leaves the binary.
    reg : (float, float)
        c_reg and f* (spikes per step) of the rate regularizer of the ``factorized`` gradients.
    neuron : NeuronModel, optional
        A neuron model other than ``alif`` (docs/model.md §10): its statements, threshold and eligibility
        generated from its equations (:mod:`.model_code`); one trial per launch or a batch side by side,
        online gradients on every synapse (no event-driven path, in-trial updates, chunks or gradients in
        the binary).  ``None`` or ``alif``: the LIF/ALIF network of ``params``.
    neuron_values : mapping, optional
        The model's parameters (floats or (N,) arrays), fixed when the network is built.
    trace : Trace, optional
        With ``gradients``: a rule's own eligibility trace (:mod:`neuroplast.gradients.traces`) instead of
        e-prop's; the network is then generated from the model's equations, ``alif`` included (its ρ, β
        from ``params``, fixed when built).
    keep_reset : bool
        With ``gradients``: the eligibility that keeps the reset term (a rule declaring
        :attr:`~neuroplast.plasticity.rules.Rule.keeps_reset`, ``ostl``), generated from the model's
        equations as ``trace`` is (``alif`` included).
    compile : bool
        ``False``: a device compiled ahead of time only generates the project's code into ``build_dir``
        (needed then): no compiler runs, no GPU is asked (``cuda_standalone``), and the network cannot be
        launched.  Default ``True``.
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
        batch: int = 1,
        threads: int = 1,
        factorized: bool = False,
        reg: tuple[float, float] = (0.0, 0.0),
        neuron: NeuronModel | None = None,
        neuron_values: Mapping[str, Any] | None = None,
        trace: Trace | None = None,
        keep_reset: bool = False,
        compile: bool = True,
    ) -> None:
        if device not in BRIAN2_DEVICES:
            raise ValueError(f"unknown device {device!r} (known: {', '.join(BRIAN2_DEVICES)})")
        #: What the device can do (:mod:`neuroplast.devices`): every device-dependent choice below asks it.
        self.capabilities = device_info(device).capabilities
        #: A compiled program launched per trial (else Brian2's runtime objects in this process).
        self._compiled = self.capabilities.ahead_of_time
        #: The program calls neuroplast's C++ functions: the input byte table, the synapse tables read at
        #: launch and the records of every synapse (else a TimedArray, synapses connected from arrays and
        #: Brian2's monitors).
        self._tables = self._compiled and self.capabilities.cpp_functions
        #: Compile the program (else only generate its code, ``compile=False``).
        self._compile_code = bool(compile)
        if not compile and not (self._compiled and build_dir):
            raise ValueError("compile=False needs a device compiled ahead of time and a build_dir")
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
        self._set_neuron(
            neuron, neuron_values, masks.n_rec, trace if gradients else None, bool(gradients and keep_reset)
        )
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
        self._set_modes(
            update_every=update_every,
            rule_code=rule_code,
            in_trial_optimizer=in_trial_optimizer,
            chunk_trials=chunk_trials,
            chunk_optimizer=chunk_optimizer,
            batch=batch,
            factorized=factorized,
            reg=reg,
        )
        compact = get_surrogate(params.surrogate).compact
        self.event_driven = bool(gradients and (compact if event_driven is None else event_driven))
        if self.model_code is not None:
            self._check_model_modes(event_driven)
        self._order_synapses()
        self._build()

    def _set_modes(
        self,
        *,
        update_every: int,
        rule_code: dict[str, str] | None,
        in_trial_optimizer: str,
        chunk_trials: int,
        chunk_optimizer: str,
        batch: int,
        factorized: bool,
        reg: tuple[float, float],
    ) -> None:
        """The optional modes (in-trial updates, chunks, batch, compiled gradients), checked together."""
        gradients = self.gradients
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
        #: The binary computes the factorized e-prop gradients (network/factorized.py): after the run, and
        #: with chunks at every boundary.
        self.factorized = bool(factorized)
        self._check_chunk(chunk_optimizer)
        self.batch = int(batch)
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1 trials, got {batch}")
        if self.batch > 1 and self.update_every:
            raise ValueError("trials side by side (batch > 1) need update_every = 0")
        if self.factorized and (not self.capabilities.compiled_gradients or gradients or self.update_every):
            raise ValueError(
                "factorized gradients in the binary need device 'cpp_standalone', gradients=False and "
                "update_every=0"
            )
        self.reg = (float(reg[0]), float(reg[1]))
        #: The optimizer of a chunk's boundary update (:data:`.equations.CHUNK_OPTIMIZERS`).
        self.chunk_optimizer = chunk_optimizer if self.chunk else "sgd"
        self.adam = (bool(self.update_every) and in_trial_optimizer == "adam") or (
            self.chunk > 0 and eq.CHUNK_OPTIMIZERS[chunk_optimizer] is not None
        )

    def _set_neuron(
        self,
        neuron: NeuronModel | None,
        values: Mapping[str, Any] | None,
        n_rec: int,
        trace: Trace | None,
        keep_reset: bool = False,
        compile: bool = True,
    ) -> None:
        """The neuron model: ``None`` (and ``alif``) the LIF/ALIF network, else its generated code (also for
        ``alif`` with a rule's own ``trace`` or an eligibility that keeps the reset)."""
        from neuroplast.model.neurons import alif_values, get_neuron
        from neuroplast.model.stepper import parameter_values

        #: The generated code of the neuron model (None: the hand-written LIF/ALIF network).
        self.model_code = None
        #: Recurrent variables a trial can record, as :class:`TrialResult` names them, and their Brian2 names.
        self.recordable, self.monitored = RECORDABLE, dict(MONITORED)
        if neuron is None or neuron.name == DEFAULT_NEURON:
            if trace is None and not keep_reset:
                return
            p = self.params
            neuron, values = get_neuron(DEFAULT_NEURON), alif_values(p)
        if values is None:
            raise ValueError(f"neuron model {neuron.name!r} needs its parameter values (neuron_values)")
        self.neuron_values = parameter_values(neuron, values, n_rec)
        self.model_code = model_code(
            neuron, bool(self.gradients), bool(self.regularization), trace, keep_reset
        )
        self.adaptation = False
        self.recordable = (*neuron.state, "z", "psi", "refractory", "L")
        self.monitored.update({s: state_variable(s) for s in neuron.state})

    def _check_model_modes(self, event_driven: bool | None) -> None:
        """What a network of a neuron model other than ``alif`` does not have (yet): one line each."""
        name = self.model_code.model.name
        if event_driven:
            raise ValueError(f"neuron model {name!r}: the event-driven eligibility path is the alif model's")
        self.event_driven = False
        if self.update_every or self.chunk or self.factorized:
            raise ValueError(
                f"neuron model {name!r}: in-trial updates, chunks and gradients in the binary are the alif "
                "model's; run one trial (or a batch side by side) per launch"
            )

    def _recorded_names(self, record: bool | tuple[str, ...], gradients: bool) -> tuple[str, ...]:
        """The recorded variables, in :attr:`recordable` order (``True``: all of them; L needs gradients)."""
        allowed = tuple(k for k in self.recordable if gradients or k != "L")
        if isinstance(record, bool):
            return allowed if record else ()
        unknown = sorted(set(record) - set(allowed))
        if unknown:
            raise ValueError(f"cannot record {', '.join(unknown)} (known: {', '.join(allowed)})")
        return tuple(k for k in allowed if k in record)

    def _check_chunk(self, optimizer: str) -> None:
        if self.chunk < 0:
            raise ValueError(f"chunk_trials must be >= 0, got {self.chunk}")
        if not self.chunk:
            return
        if not self.capabilities.chunks:
            raise ValueError("many trials per launch (chunk_trials > 0) need device 'cpp_standalone'")
        if not (self.gradients or self.factorized) or self.update_every or self.record:
            raise ValueError(
                "chunk_trials > 0 needs gradients=True (or factorized=True), update_every=0 and record=False"
            )
        if optimizer not in eq.CHUNK_OPTIMIZERS:
            known = sorted(eq.CHUNK_OPTIMIZERS)
            raise ValueError(f"chunk_optimizer must be one of {known}, not {optimizer!r}")

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

    def run_chunk(
        self,
        weights: Weights,
        trials: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]],
        *,
        feedback: np.ndarray,
        learning_rate: float,
        adam: dict | None = None,
        reg: tuple[float, float] = (0.0, 0.0),
        feedback_rule: str = "fixed",
        weight_decay: float = 0.0,
        trained: Mapping[str, bool] | None = None,
        average_steps: float = 1.0,
    ) -> list[TrialResult]:
        """Run up to K iterations in one launch, the optimizer stepping at every boundary (docs/model.md §7).

        An iteration is one trial, or — a network of B = :attr:`batch` copies — B trials side by side whose
        mean gradient the boundary step takes (``trainer._batch_mean``'s operations, §8).

        Parameters
        ----------
        weights : Weights
            The weights of the first trial.
        trials : list of (x, target, mask)
            At most ``chunk_trials`` iterations of B trials each, in order, iteration by iteration (fewer
            iterations: the launch simulates only those, its duration chosen at run time by the device).
        feedback : ndarray (N, n_out)
            B of the first trial.
        learning_rate : float
            η of every projection and the bias.
        adam : dict, optional
            Adam's state before the first trial (as for :meth:`run_trial`: ``t``, ``b1``, ``b2``, ``eps``,
            moments ``m``, ``v`` as edge vectors).
        reg : (float, float)
            c_reg and f* (spikes per step) of the rate regularization (with ``regularization``).
        feedback_rule : {"fixed", "symmetric", "adaptive"}
            How B moves at a boundary: not at all (random e-prop), B = the new W_out (symmetric e-prop), or
            Kolen–Pollack's step with decay ``weight_decay`` (adaptive e-prop, :class:`EpropAdaptive
            <neuroplast.plasticity.rules.EpropAdaptive>`).  A value of the launch, not of the compiled
            program.
        weight_decay : float
            λ of the adaptive rule (``training.weight_decay``); unused otherwise.
        trained : mapping of str to bool, optional
            Which of ``input``, ``recurrent``, ``output``, ``bias`` the boundary steps train (default: all);
            an untrained one steps on a zero gradient, as :func:`~neuroplast.plasticity.optim.trainable`
            gives it.  Values of the launch.
        average_steps : float
            n of the averaged gradient g / n the boundary steps take (``training.average_gradient``: the
            steps the loss counts, the same for every trial of the launch; 1: not averaged).  The logged
            gradients stay g.

        Returns
        -------
        list of TrialResult
            One per given trial, in order, with ``ran_with`` (the simulation's weights of that trial, its
            own copy's).  The trials of all but the last iteration have ``regularized`` gradients (taken at
            the next boundary); the last iteration's are the state at the end, as :meth:`run_trial` returns
            them (online: the raw gradient and Σe; :attr:`factorized`: the binary's, regularized).
        """
        if not self.chunk:
            raise ValueError("run_chunk needs a network built with chunk_trials > 0")
        B = self.batch
        n, left = divmod(len(trials), B)
        if left or not 1 <= n <= self.chunk:
            raise ValueError(
                f"run_chunk takes 1 to {self.chunk} iterations of {B} trial{'s' if B > 1 else ''}, "
                f"got {len(trials)} trials"
            )
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
        if feedback_rule not in eq.CHUNK_FEEDBACK_RULES:
            known = sorted(eq.CHUNK_FEEDBACK_RULES)
            raise ValueError(f"feedback_rule must be one of {known}, not {feedback_rule!r}")
        follows, adapts = eq.CHUNK_FEEDBACK_RULES[feedback_rule]
        values[rec.feedback_follows] = np.asarray(follows)
        values[rec.feedback_adapts] = np.asarray(adapts)
        values[rec.kp_lam] = np.asarray(float(weight_decay) if adapts else 0.0)
        keys = {*self.synapses, "bias"}
        train = dict.fromkeys(keys, True) | dict(trained or {})
        if set(train) != keys:
            raise ValueError(f"trained: unknown projection(s) {sorted(set(train) - keys)}")
        out = self.groups["readout"]
        for key, syn in self.synapses.items():
            values[syn.train_w] = np.asarray(float(bool(train[key])))
        values[out.train_b] = np.asarray(float(bool(train["bias"])))
        if not (average_steps >= 1.0 and np.isfinite(average_steps)):
            raise ValueError(f"average_steps must be a finite number >= 1, got {average_steps}")
        values[rec.avg_n] = values[out.avg_n] = np.asarray(float(average_steps))
        self._feedback_values(values, feedback)
        # the launch simulates these n trials only (the compiled program holds up to ``chunk``)
        self._run(values, self._trial_arrays(trials, in_time=True), p, n_trials=n)
        return self._collect_chunk(n)
