"""Which gradient path ``training.path = "auto"`` takes: a cost model of one iteration (issue 26).

Both paths simulate the same network; what differs per iteration of a batch of B trials of T steps is

* **online** — every input and recurrent synapse (S_h of them) steps its eligibility in the simulation:
  ``c_syn · T · S_h · B``; with the chunked engine (k iterations per launch, docs/model.md §7) the launch,
  its set-up and the reading back of its results are shared by k iterations: ``c_launch / k``;
* **factorized** — the simulation records ψ and the spikes, and the gradient is contracted after it
  (docs/model.md §3): by the compiled binary (docs/model.md §9) one pass over every spike for every
  postsynaptic neuron, ``c_spike · N · (E_in + E_rec) · B`` (E: the trial's expected input and recurrent
  spikes), at every boundary of the chunked engine (k iterations per launch, ``c_launch / k`` as online),
  or, where the device has no compiled gradient, NumPy's dense products
  ``c_flop · 2 · N · (n_in + N) · T · B`` with one launch per iteration: ``c_launch``.

The rest — neuron updates, spike propagation, the optimizer over every weight, the log — is the same on
both and left out.  The expected spikes come from the config alone: inputs at the task's rate (``rate_hz``,
else its noise or cue rate, else :data:`DEFAULT_RATE_HZ`), recurrent neurons at the rate regularizer's
target (``training.reg_rate_hz`` when ``reg_coeff`` > 0, else :data:`DEFAULT_RATE_HZ`) — so the choice is a
pure function of the config and the device's capabilities: never of a measurement, so that the same config
always takes the same path (the paths agree to rounding, not to the bit).

The trainer asks the model on devices with a compiled gradient (cpp_standalone, where it was fitted),
with the iterations per launch that ``simulation.chunk_iterations = 0`` would give without recorded traces
(so that neither that setting nor ``--trace`` changes the path); elsewhere
:func:`neuroplast.training.trainer.choose_path` keeps its size rule.

The constants were fitted on the 2-core VM of docs/benchmarks.md ("Scaling", ``python
scripts/bench_scaling.py``): cpp_standalone, one thread, the sine task at N = 100 … 3,000 and p = 0.005 … 1;
the model puts every measured pair on the right side (the faster path measured is the one it picks) and
machines that differ by a common factor pick the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_RATE_HZ",
    "COSTS",
    "LAUNCH_SHARE",
    "Workload",
    "PathCosts",
    "workload",
    "path_costs",
    "launch_iterations",
]

#: The share of an iteration's own work that its part of a launch's cost may add (:func:`launch_iterations`).
LAUNCH_SHARE = 0.02

#: Rate assumed for inputs and recurrent neurons where the config names none (Hz).
DEFAULT_RATE_HZ = 20.0


@dataclass(frozen=True)
class Costs:
    """The model's constants (seconds per unit)."""

    #: One synapse's eligibility step on the online path (event-driven or sweep; measured 0.3–0.9 ns).
    syn_step: float = 0.5e-9
    #: One (spike, postsynaptic neuron) pair of the compiled factorized gradient (≈ 1 ns).
    spike_post: float = 1.0e-9
    #: One multiply-add of NumPy's dense factorized contraction (BLAS, one thread, ≈ 0.05 ns).
    flop: float = 0.05e-9
    #: A launch: starting the binary, its arguments and input files, reading its results back, and the
    #: trainer's per-launch work (≈ 10 ms: the factorized path's whole iteration at N = 100).
    launch: float = 10e-3
    #: Work of every path per synapse, trial and iteration: its gradient and weights read back, the
    #: optimizer, the record and the log (≈ 100–200 ns at N = 3,000, p = 0.1: 0.2 s per iteration).
    syn_iteration: float = 100e-9
    #: One recurrent neuron's step of the simulation (its code objects; ≈ 20 ns).
    neuron_step: float = 20e-9


COSTS = Costs()


@dataclass(frozen=True)
class Workload:
    """What the cost of an iteration depends on.

    Attributes
    ----------
    steps : int
        T, steps per trial.
    n_rec, n_in : int
        Recurrent neurons N and inputs.
    hidden_synapses : int
        S_h, trained input and recurrent synapses.
    input_spikes, recurrent_spikes : float
        Expected spikes per trial (E_in, E_rec).
    batch : int
        Trials per iteration, B.
    """

    steps: int
    n_rec: int
    n_in: int
    hidden_synapses: int
    input_spikes: float
    recurrent_spikes: float
    batch: int = 1


def _input_rate_hz(task: Any) -> float:
    for name in ("rate_hz", "noise_rate_hz", "cue_rate_hz"):
        value = getattr(task, name, None)
        if isinstance(value, int | float):
            return float(value)
    return DEFAULT_RATE_HZ


def workload(cfg: Any, hidden_synapses: int) -> Workload:
    """The :class:`Workload` of a config with ``hidden_synapses`` input and recurrent synapses."""
    sim, tr, net = cfg.simulation, cfg.training, cfg.network
    seconds = sim.n_steps * sim.dt_ms * 1e-3
    rec_hz = tr.reg_rate_hz if tr.reg_coeff > 0 else DEFAULT_RATE_HZ
    n_in = int(getattr(cfg.task, "n_in", 0))
    return Workload(
        steps=int(sim.n_steps),
        n_rec=int(net.n_rec),
        n_in=n_in,
        hidden_synapses=int(hidden_synapses),
        input_spikes=n_in * _input_rate_hz(cfg.task) * seconds,
        recurrent_spikes=net.n_rec * rec_hz * seconds,
        batch=int(tr.batch_size),
    )


@dataclass(frozen=True)
class PathCosts:
    """Modelled seconds per iteration that differ between the paths, and the cheaper one."""

    online: float
    factorized: float

    @property
    def choice(self) -> str:
        """The cheaper path (``online`` on a tie)."""
        return "factorized" if self.factorized < self.online else "online"

    def reason(self) -> str:
        """One line for the run's first lines."""
        return (
            f"{self.choice} gradient path: cost model {self.online * 1e3:.3g} ms online vs "
            f"{self.factorized * 1e3:.3g} ms factorized per iteration"
        )


def path_costs(w: Workload, *, compiled: bool, chunk: int, costs: Costs = COSTS) -> PathCosts:
    """The modelled cost of each path (module docstring).

    Parameters
    ----------
    w : Workload
    compiled : bool
        Whether the factorized gradient is computed by the compiled binary (else NumPy's dense products).
    chunk : int
        Iterations per launch the chunked engine would run (1: one per launch): the online path's, and the
        compiled factorized path's (the same plan).
    costs : Costs
    """
    launch = costs.launch / max(1, chunk)
    online = costs.syn_step * w.steps * w.hidden_synapses * w.batch + launch
    if compiled:
        contraction = costs.spike_post * w.n_rec * (w.input_spikes + w.recurrent_spikes)
    else:
        contraction, launch = costs.flop * 2.0 * w.n_rec * (w.n_in + w.n_rec) * w.steps, costs.launch
    return PathCosts(online=online, factorized=contraction * w.batch + launch)


def launch_iterations(w: Workload, synapses: int, costs: Costs = COSTS) -> int:
    """The iterations a launch needs so that its cost adds at most :data:`LAUNCH_SHARE` to each of them.

    An iteration's own work is at least ``c_syn_iteration · S + c_neuron_step · N · T`` per trial (S: every
    synapse; what every path reads back, steps and logs, and the simulation's neuron updates); a launch of
    k iterations adds ``c_launch / k`` to each.  More iterations than this gain under 2 % and cost memory:
    each holds its gradient and weights of every synapse until the launch ends (16 bytes per synapse and
    trial, in the binary and read back), so that at N = 3,000, p = 0.1 a launch of 10 iterations doubled
    the peak memory of one (issue 26: ≤ 200 bytes per synapse).

    Parameters
    ----------
    w : Workload
    synapses : int
        Every synapse of one trial's network (input, recurrent and readout).
    costs : Costs
    """
    floor = (costs.syn_iteration * synapses + costs.neuron_step * w.n_rec * w.steps) * max(1, w.batch)
    return max(1, math.ceil(costs.launch / (LAUNCH_SHARE * floor)))
