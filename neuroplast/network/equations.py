"""The Brian2 statements of the model (docs/model.md §3, §5, §6) and the within-step schedule.

Everything here is a string (or a small pure function returning one); no Brian2 object is created, and
Brian2 is not imported. :mod:`neuroplast.network.builder` assembles the network from these pieces.

The network implements the *discrete* equations with explicit per-step updates (no ODE integration).
:data:`SCHEDULE` says where each operation runs inside one Brian2 time step (``when`` slot, then
``order``), in this order::

    thresholds       input:  spike if X(t, i) > 0.5                           (x_t)
    synapses         input → recurrent: I_in += w;  recurrent → recurrent: I_rec += w
                     (the recurrent event space still holds z_{t−1}: its threshold runs later)
    after_synapses   recurrent update (v_t, a_t, r̂_t, ψ_t; z̄ traces), then threshold (z_t),
                     then recurrent → readout: I_out += w
    before_resets    readout: y_t = κ y_{t−1} + c_out I_out + b; loss error;
                     [grad] learning signal L_t = c_out Σ_k B_jk err_k (summed variable)
    resets           z = 1, r = n_ref for neurons that spiked
    before_end       [grad] a rule's own postsynaptic trace variables (they read ψ_t, z_t, L_t); then
                     e_t, ē_t = κ ē_{t−1} + e_t, g += L_t ē_t, Σ e_t, then
                     ε^a_{t+1} = (ρ − βψ_t) ε^a_t + ψ_t z̄_t  (one pass per synapse, or — event-driven —
                     only over synapses onto neurons with ψ_t ≠ 0, the gaps carried by per-neuron
                     factors, docs/model.md §5); readout traces
    start (every k)  [in-trial learning] W ← W − η g (+ the rule's code), g = 0; weight monitors
    start (every T)  [chunks] the finished trial's gradient, the optimizer step, weight monitors;
                     then (after_synapses, −1) every state variable back to rest
    end              monitors record v_t, a_t, z_t, ψ_t, y_t, L_t
"""

from __future__ import annotations

import re
from typing import Protocol

__all__ = [
    "SCHEDULE",
    "schedule",
    "slot",
    "IN_TRIAL_SHARED",
    "LAZY_VARS",
    "INPUT_MODEL",
    "INPUT_X",
    "INPUT_TABLE_HEADER",
    "input_threshold",
    "input_trace",
    "MASK_SINGLE",
    "MASK_BATCH",
    "recurrent_model",
    "ALIF_VARIABLES",
    "model_recurrent_model",
    "model_recurrent_update",
    "model_threshold",
    "MODEL_INPUT_MODEL",
    "model_input_trace",
    "RECURRENT_THRESHOLD",
    "RECURRENT_RESET",
    "PSI_EVENT",
    "THRESHOLD_DISTANCE",
    "recurrent_update",
    "readout_model",
    "READOUT_UPDATE",
    "ON_PRE",
    "eligibility_model",
    "projection_model",
    "output_model",
    "LEARNING_SIGNAL",
    "ZOUT_TRACE",
    "GRAD_OUTPUT",
    "GRAD_BIAS",
    "eligibility_sweep",
    "eligibility_event",
    "LAZY_FACTOR",
    "lazy_carry",
    "in_trial_update",
    "in_trial_bias",
    "IN_TRIAL_LAZY_RESET",
    "optimizer_step",
    "CHUNK_FUNCTIONS",
    "ABOVE_CPP",
    "ABOVE_FUNCTION",
    "CLIP_FUNCTION",
    "CLIP_CPP",
    "branch_free",
    "REG_SHARED",
    "CHUNK_SHARED",
    "CHUNK_READOUT_SHARED",
    "CHUNK_TRAIN",
    "CHUNK_OPTIMIZERS",
    "CHUNK_FEEDBACK_RULES",
    "CHUNK_REGULARIZATION",
    "chunk_gradient",
    "chunk_update",
    "chunk_bias_update",
    "BATCH_MEAN_TEMPLATE",
    "batch_mean_function",
    "chunk_reset",
]

#: Where each operation runs inside one Brian2 time step: operation -> (``when``, ``order``), in execution
#: order. The builder reads every slot from here (also those that equal Brian2's defaults).
SCHEDULE: dict[str, tuple[str, int]] = {
    "input_threshold": ("thresholds", 0),  # x_t = [X(t, i) > 0.5]
    "input_propagation": ("synapses", -1),  # I_in += w
    "recurrent_propagation": ("synapses", -1),  # I_rec += w (spikes of step t − 1)
    "recurrent_update": ("after_synapses", 0),  # v, a, r̂, r, ψ, z̄ of the recurrent neurons
    "input_trace": ("after_synapses", 0),  # z̄ of the inputs
    "recurrent_threshold": ("after_synapses", 1),  # z_t
    "spike_monitor": ("after_synapses", 2),
    "output_propagation": ("after_synapses", 3),  # I_out += w
    "readout_update": ("before_resets", 0),  # y_t
    # The loss error: the statement is the loss's own (model/losses.py ``Loss.brian2_error``), placed here.
    "loss_normaliser": ("before_resets", 1),  # cross-entropy: Σ_k exp(y_k) (summed variable)
    "loss_error": ("before_resets", 2),  # err
    "learning_signal": ("before_resets", 10),  # L = c_out Σ_k B err (summed variable)
    "recurrent_reset": ("resets", 0),  # z = 1, r = n_ref
    "zout_trace": ("before_end", 0),
    # a rule's own postsynaptic trace variables (network/model_code.py): after ψ_t, z_t, L_t; before the sweep
    "trace_post": ("before_end", 0),
    "lazy_factor": ("before_end", 0),  # event-driven: Dk = κ D
    "eligibility_sweep": ("before_end", 1),  # sweep path: e, ē, g, Σ e, ε^a of every synapse
    "psi_event": ("before_end", 1),  # event-driven: the custom event ψ > 0
    "grad_output": ("before_end", 1),
    "grad_bias": ("before_end", 1),
    "eligibility_event": ("before_end", 2),  # event-driven: e, ē, g, Σ e, ε^a of synapses onto ψ ≠ 0
    "lazy_carry": ("before_end", 3),  # event-driven: A, D, R of the gaps
    "in_trial_update": ("start", 0),  # every k steps: w ← w + dw, g = 0 (and the bias)
    "in_trial_lazy_reset": ("start", 1),  # event-driven: A = 0 after an update
    "in_trial_monitor": ("start", 2),  # the weights in force from this step on
    # [chunks] many trials per launch: at the first step of every trial but the first, the finished trial's
    # gradient, the optimizer step and the reset of every state variable (docs/model.md §7)
    "chunk_regularization": ("start", 3),  # r_j = c_reg (count_j / T − f*) / T of the finished trial
    "chunk_gradient": ("start", 4),  # its gradient: g + A ē (the gaps) + r Σe
    "chunk_grad_monitor": ("start", 5),
    "chunk_update": ("start", 6),  # the optimizer step (and B = W_outᵀ for symmetric feedback)
    "chunk_weight_monitor": ("start", 7),  # the weights in force during the trial that starts now
    # after the propagation of the last step's spikes (which must not reach the new trial) and before
    # the recurrent update: everything back to rest except this step's input current
    "chunk_reset": ("after_synapses", -1),
    "state_monitor": ("end", 0),  # v, a, z, ψ, r̂, L; y
}


def slot(operation: str) -> dict[str, str | int]:
    """``when`` and ``order`` of ``operation`` (:data:`SCHEDULE`), as keywords of a Brian2 object."""
    when, order = SCHEDULE[operation]
    return {"when": when, "order": order}


def schedule(obj: object, operation: str) -> None:
    """Put a Brian2 object (thresholder, pathway, summed-variable updater, monitor) in its slot."""
    obj.when, obj.order = SCHEDULE[operation]  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- constants of the groups

#: Constants of the in-trial updates, on the recurrent group (input and recurrent synapses read them as
#: ``*_post``) and on the readout group (readout synapses and the bias).
IN_TRIAL_SHARED = "".join(
    f"\n{name} : 1 (shared)"
    for name in ("in_trial_lr", "in_trial_decay", "adam_b1", "adam_b2", "adam_eps", "adam_t0")
)

#: Per-neuron state of the event-driven path: D = κ^(steps since the neuron's last ψ ≠ 0 step),
#: Dk = κ D (this step's factor), A = Σ over those steps of L_s κ^(s − last), R = ρ^(steps − 1).
LAZY_VARS = "\nD : 1\nDk : 1\nA : 1\nR : 1\n"

# ------------------------------------------------------------------------------------------ input group

INPUT_MODEL = """
zbar : 1
alpha : 1 (shared)
c_in : 1 (shared)
"""
#: The input x_t of input neuron i (0 or 1), by input mechanism: a TimedArray of the launch's inputs (the
#: runtime device) or the launch's byte table (cpp_standalone: one byte per value instead of eight, read by
#: the functions of :data:`INPUT_TABLE_HEADER`, docs/model.md §9).  Both give the same 0.0 or 1.0.
INPUT_X = {"timed_array": "X_input(t, i)", "table": "neuroplast_input_spike(i, timestep(t, dt))"}
#: The C++ header (in ``neuroplast/network/include``) of the byte table: its loader and
#: ``neuroplast_input_spike``.
INPUT_TABLE_HEADER = "neuroplast_input.h"


def input_threshold(x: str) -> str:
    """The input neurons' threshold: spike when ``x`` (:data:`INPUT_X`) is 1."""
    return f"{x} > 0.5"


def input_trace(x: str) -> str:
    """z̄ of the inputs (online gradients only): z̄ = α z̄ + c_in x_t."""
    return f"zbar = alpha * zbar + c_in * {x}"


#: How a loss statement reads the recall window (``Loss.brian2_error``), and what a network of trials side
#: by side reads instead: the mask has one column per readout unit, so that each copy reads its own trial's.
MASK_SINGLE = "M_mask(t, 0)"
MASK_BATCH = "M_mask(t, i)"

# -------------------------------------------------------------------------------------- recurrent group

_RECURRENT_MODEL = """
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


def recurrent_model(event_driven: bool) -> str:
    """Variables of the recurrent group (with the event-driven path's per-neuron factors)."""
    return _RECURRENT_MODEL + IN_TRIAL_SHARED + (LAZY_VARS if event_driven else "")


#: The ``alif`` model's own variables of the recurrent group (state, parameters, the z̄ trace): what a
#: network of another neuron model (:mod:`.model_code`) replaces with that model's.
ALIF_VARIABLES = ("v", "a", "zbar", "alpha", "rho", "beta")


def model_recurrent_model(model_variables: str) -> str:
    """Variables of the recurrent group of a neuron model other than ``alif``: the spike, refractory,
    drive, learning-signal and readout-trace variables of every network, and ``model_variables``
    (:attr:`.model_code.ModelCode.group`)."""
    keep = [
        line
        for line in _RECURRENT_MODEL.strip().splitlines()
        if line.split(":")[0].strip() not in ALIF_VARIABLES
    ]
    return "\n" + "\n".join(keep) + "\n" + model_variables


def model_recurrent_update(surrogate: _Surrogate, update: str, distance: str, after_psi: str) -> str:
    """One step of the recurrent neurons of a neuron model other than ``alif`` (:mod:`.model_code`): the
    refractory logic of :func:`recurrent_update`, the model's ``update``, ψ of ``distance`` (u), then
    ``after_psi`` (which still reads z_{t−1}) and the spike and currents back to 0."""
    psi = surrogate.brian2_psi(distance)
    return (
        "refr = int(r > 0.5)\n"
        "r = clip(r - 1.0, 0.0, n_ref)\n"
        + update
        + f"psi = (1.0 - refr) * {psi}\n"
        + after_psi
        + "z = 0.0\nI_in = 0.0\nI_rec = 0.0\n"
    )


def model_threshold(distance: str) -> str:
    """The spike of a neuron model other than ``alif``: u > 0 outside the refractory period."""
    return f"{distance} > 0 and refr < 0.5"


#: The input neurons' drive of the eligibility of a neuron model other than ``alif`` (c_in x_t).
MODEL_INPUT_MODEL = "\npre_drive : 1\n"


def model_input_trace(x: str) -> str:
    """c_in x_t of the inputs, the presynaptic drive of a neuron model's eligibility (online gradients)."""
    return f"pre_drive = c_in * {x}"


#: Brian2's ``clip`` as a C++ function without branches, for the recurrent neurons' update of a compiled
#: network (a device with ``cpp_functions``): Brian2's ``_clip`` compiles to two conditional jumps, and ψ's
#: ``clip(1 − |u|, 0, 1)`` takes one or the other at random (a neuron near its threshold or not) — ≈ 40 %
#: of the recurrent update's time in `perf` of the evidence binary, ≈ 30 % of which that update was.
CLIP_FUNCTION = "neuroplast_clip"
#: Its C++: ``a_min > value ? a_min : value`` is SSE2's ``maxsd(a_min, value)`` and ``a_max < y ? a_max : y``
#: its ``minsd(a_max, y)`` (a NaN operand gives the second one), so the result is Brian2's ``_clip``
#: (value < a_min → a_min, value > a_max → a_max, else value) for every double, NaN and ±0 included.  GCC
#: and Clang compile these selects to ``maxsd``/``minsd`` on x86 (no branch), and in a loop over the
#: neurons to their vector forms ``maxpd``/``minpd``: the recurrent update is vectorized (with
#: :func:`branch_free`'s :data:`ABOVE_FUNCTION` and the networks' flags, ``devices.STRICT_FLAGS``).  (An
#: earlier form called SSE2's intrinsics on one value: as fast alone, but no loop around it vectorizes.)
CLIP_CPP = """
static inline double neuroplast_clip(const double value, const double a_min, const double a_max)
{
    const double y = a_min > value ? a_min : value;
    return a_max < y ? a_max : y;
}
"""
#: Brian2's ``int(x > a)`` (a bool made an integer, then a double where a float variable takes it) as a
#: select of two doubles: the same value for every x (0.0 for NaN), and, unlike Brian2's ``int_`` template
#: (which no loop around it vectorizes), a compare and a mask in a vectorized loop.
ABOVE_FUNCTION = "neuroplast_above"
ABOVE_CPP = """
static inline double neuroplast_above(const double x, const double a)
{
    return x > a ? 1.0 : 0.0;
}
"""
_CLIP_CALL = re.compile(r"(?<![\w.])clip\(")
#: A line ``<variable> = int(<variable> > <number>)``: a comparison with a constant made an integer, assigned.
_INT_ABOVE = re.compile(
    r"^([ \t]*[A-Za-z_]\w*[ \t]*=[ \t]*)int\([ \t]*([A-Za-z_]\w*)[ \t]*>[ \t]*"
    r"(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)[ \t]*\)[ \t]*$",
    re.MULTILINE,
)


def branch_free(code: str) -> str:
    """``code`` (Brian2 abstract code) with every call of Brian2's ``clip`` calling :data:`CLIP_FUNCTION` and
    every statement ``<variable> = int(<variable> > <number>)`` calling :data:`ABOVE_FUNCTION` (the same
    values; for a compiled network, whose namespace holds those functions).  Only such whole statements:
    their 0.0 or 1.0 goes straight into the variable (exactly 0 or 1 in an integer one), never into an
    integer expression."""
    code = _CLIP_CALL.sub(f"{CLIP_FUNCTION}(", code)
    return _INT_ABOVE.sub(rf"\1{ABOVE_FUNCTION}(\2, \3)", code)


RECURRENT_THRESHOLD = "v > v_th + beta * a and refr < 0.5"
RECURRENT_RESET = "z = 1.0\nr = n_ref\ncount += 1.0"
#: The custom event of the event-driven path (``psi_active``).
PSI_EVENT = "psi > 0"
#: v − A_t, the argument of the surrogate.
THRESHOLD_DISTANCE = "(v - (v_th + beta * a))"


class _Surrogate(Protocol):
    def brian2_psi(self, dist: str = ...) -> str: ...


def recurrent_update(surrogate: _Surrogate, traces: bool = True) -> str:
    """One step of the recurrent neurons (docs/model.md (1), (2), (4)); ψ from ``surrogate``.

    ``traces``: also the presynaptic trace z̄ of the online gradient (a network without gradients inside
    the simulation leaves it out, as it leaves out the inputs' :func:`input_trace`).
    """
    psi = surrogate.brian2_psi(THRESHOLD_DISTANCE)
    return (
        "refr = int(r > 0.5)\n"
        "r = clip(r - 1.0, 0.0, n_ref)\n"
        + ("zbar = alpha * zbar + c_in * z\n" if traces else "")
        + "v = alpha * v + c_in * (I_in + I_rec) - v_th * z\n"
        "a = rho * a + z\n"
        f"psi = (1.0 - refr) * {psi}\n"
        "z = 0.0\n"
        "I_in = 0.0\n"
        "I_rec = 0.0\n"
    )


# ---------------------------------------------------------------------------------------- readout group

_READOUT_MODEL = """
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


#: Summed over the readout units onto each of them: Σ_k exp(y_k), for softmax losses (``Loss.softmax``).
SOFTMAX_NORMALISER = "expsum_post = exp(y_pre) : 1 (summed)"


def readout_model(adam: bool, chunk: bool = False) -> str:
    """Variables of the readout group (with the bias's in-trial Adam moments; ``chunk``: the constants of
    the boundary update, :data:`CHUNK_READOUT_SHARED`)."""
    return (
        _READOUT_MODEL
        + IN_TRIAL_SHARED
        + ("\nmb_adam : 1\nvb_adam : 1\n" if adam else "")
        + (CHUNK_READOUT_SHARED if chunk else "")
    )


READOUT_UPDATE = "y = kappa * y + c_out * I_out + b\nI_out = 0.0"

# --------------------------------------------------------------------------------------------- synapses

#: Spike propagation of each projection.
ON_PRE = {"input": "I_in_post += w", "recurrent": "I_rec_post += w", "output": "I_out_post += w"}
_ADAM_MOMENTS = "\nm_adam : 1\nv_adam : 1"


def eligibility_model(adaptation: bool, regularization: bool) -> str:
    """Per-synapse eligibility state: ē, g (and ε^a, Σ e)."""
    return (
        "ebar : 1\ng : 1" + ("\neps_a : 1" if adaptation else "") + ("\nesum : 1" if regularization else "")
    )


def projection_model(eligibility: str | None, adam: bool) -> str:
    """Input or recurrent projection: w, the ``eligibility`` state it holds, Adam's moments."""
    return "w : 1" + (f"\n{eligibility}" if eligibility else "") + (_ADAM_MOMENTS if adam else "")


#: The learning signal, a summed variable of the readout synapses onto their *presynaptic* (recurrent)
#: neurons: each readout synapse k←j holds its feedback weight B_jk next to W_out,kj.
LEARNING_SIGNAL = "L_pre = c_out_post * B * err_post : 1 (summed)"


def output_model(gradients: bool, adam: bool, factorized: bool = False) -> str:
    """Variables of the readout projection: w (and g, B, the learning signal, Adam's moments; ``factorized``:
    g and B for the gradients computed in the binary, network/factorized.py, and — the boundary's Adam of
    a chunked network — the moments)."""
    if not gradients:
        return "w : 1\ng : 1\nB : 1" + (_ADAM_MOMENTS if adam else "") if factorized else "w : 1"
    return f"w : 1\ng : 1\nB : 1\n{LEARNING_SIGNAL}" + (_ADAM_MOMENTS if adam else "")


# ------------------------------------------------------------------------------------ online gradients

ZOUT_TRACE = "zout = kappa * zout + z"
GRAD_OUTPUT = "g += c_out_post * err_post * zout_pre"
GRAD_BIAS = "bf = kappa * bf + 1.0\ngb += err * bf"


def _e(adaptation: bool) -> str:
    return "psi_post * (zbar_pre - beta_post * eps_a)" if adaptation else "psi_post * zbar_pre"


_EPS_A_NEXT = "eps_a = (rho_post - beta_post * psi_post) * eps_a + psi_post * zbar_pre\n"


def eligibility_sweep(adaptation: bool, regularization: bool) -> str:
    """One pass over all synapses at the end of step t (any surrogate).

    e_t, ē_t, Σ L ē (and Σ e), then ε^a_{t+1} = (ρ − βψ_t) ε^a_t + ψ_t z̄_t for the next step (the same
    values as updating ε^a at the start of step t+1, in a single sweep).
    """
    e = _e(adaptation)
    code = (f"esum += {e}\n" if regularization else "") + f"ebar = kappa_post * ebar + {e}\n"
    code += "g += L_post * ebar\n"
    return code + (_EPS_A_NEXT if adaptation else "")


def eligibility_event(adaptation: bool, regularization: bool) -> str:
    """Synaptic code at a step t where the postsynaptic ψ_t ≠ 0 (last such step: t_e).

    ``ebar`` holds ē_{t_e} and ``eps_a`` ε^a_{t_e+1}; in between ψ = 0, so e = 0, ē decayed by κ per
    step and ε^a by ρ, and Σ L ē over those steps is ``A_post`` · ē_{t_e}.
    """
    code = "g += A_post * ebar\n"
    code += "eps_a = R_post * eps_a\n" if adaptation else ""
    code += f"e_t = {_e(adaptation)}\n"
    code += "esum += e_t\n" if regularization else ""
    code += "ebar = Dk_post * ebar + e_t\ng += L_post * ebar\n"
    return code + (_EPS_A_NEXT if adaptation else "")


LAZY_FACTOR = "Dk = kappa * D"


def lazy_carry(adaptation: bool) -> str:
    """Per-neuron factors after this step's events: restart them where ψ > 0, else carry the gap on."""
    code = "ev = int(psi > 0)\nA = (A + L * Dk) * (1 - ev)\nD = Dk * (1 - ev) + ev\n"
    return code + ("R = rho * R * (1 - ev) + ev\n" if adaptation else "")


# ------------------------------------------------------------------------------------ in-trial learning


def optimizer_step(adam: bool, g: str, sfx: str, m: str = "m_adam", v: str = "v_adam") -> str:
    """``dw`` of the in-trial optimizer for gradient ``g`` (``sfx``: where η and Adam's constants live).

    SGD: dw = −η g. Adam (Kingma & Ba, bias-corrected, as :class:`neuroplast.plasticity.optim.Adam`):
    per-synapse moments, step number = the optimizer's count before the trial + this update's index; the
    ``active`` flag leaves the moments untouched at the clock's first tick (t = 0).
    """
    if not adam:
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


def in_trial_update(rule_code: str, *, adam: bool, flush: bool) -> str:
    """A projection's in-trial step: ``dw`` of the optimizer, the rule's code, then w ← w + dw, g = 0.

    ``active`` = 0 at the clock's first tick (t = 0), where the step must be a no-op. ``flush``: first add
    the Σ L ē of the steps since the postsynaptic neuron's last event (event-driven path).
    """
    head = (
        "active = int(t > t_first_update)\n"
        "eta = in_trial_lr_post * active\n"
        "lam = in_trial_decay_post * active\n"
    ) + optimizer_step(adam, "g", "_post")
    rule = rule_code.strip() + "\n" if rule_code.strip() else ""
    return ("g = g + A_post * ebar\n" if flush else "") + head + rule + "w = w + dw\ng = 0.0\n"


def in_trial_bias(adam: bool) -> str:
    """The bias's in-trial step (at the readout's own η, no rule code)."""
    return (
        "active = int(t > t_first_update)\neta = in_trial_lr * active\n"
        + optimizer_step(adam, "gb", "", "mb_adam", "vb_adam")
        + "b = b + dw\ngb = 0.0"
    )


#: The gaps' Σ L ē went into the update: restart them.
IN_TRIAL_LAZY_RESET = "A = 0.0"


# ------------------------------------------------------------------------- many trials per launch
# The optimizer step at a trial boundary must give the same doubles as NumPy (plasticity/optim.py), so its
# arithmetic is written as C++ functions: Brian2's code optimiser collects and reorders the terms of
# abstract-code expressions (e.g. c (x/T − f)/T → (c/T)(x/T − f)), which changes the last bits. Each
# function does its operations in the order of the NumPy expression it stands for; the compiler flags
# (devices.STRICT_FLAGS) keep them as written.

#: name -> (C++ definition, number of arguments).  ``active`` = 0 leaves a variable unchanged (the
#: boundary clock's tick at t = 0, before the first trial).
CHUNK_FUNCTIONS: dict[str, tuple[str, int]] = {
    # trainer._reg_signal: c_reg * (count / T - f_target) / T
    "np_reg": ("double np_reg(double n, double c, double T, double f) { return c * (n / T - f) / T; }", 4),
    # a + b * c (the gaps' Σ L ē, the regularization term; BrianNetwork._collect_gradients, trainer._online)
    "np_add_mul": ("double np_add_mul(double a, double b, double c) { return a + b * c; }", 3),
    # Adam.step: m = b1 * m + (1 - b1) * g
    "np_adam_m": (
        "double np_adam_m(double m, double g, double b1, double on)"
        " { return on > 0.5 ? b1 * m + (1 - b1) * g : m; }",
        4,
    ),
    # Adam.step: v = b2 * v + (1 - b2) * g * g
    "np_adam_v": (
        "double np_adam_v(double v, double g, double b2, double on)"
        " { return on > 0.5 ? b2 * v + (1 - b2) * g * g : v; }",
        4,
    ),
    # Adam.step: 1 - b1**t and 1 - b2**t, once per boundary (a statement of the update's scalar code:
    # two pow per synapse were 13 % of a 1.2-million-synapse binary)
    "np_one_minus_pow": ("double np_one_minus_pow(double b, double t) { return 1 - pow(b, t); }", 2),
    # Adam.step: -lr * (m / c1) / (sqrt(v / c2) + eps), c1 = 1 - b1**t, c2 = 1 - b2**t
    "np_adam_dw": (
        "double np_adam_dw(double m, double v, double lr, double c1, double c2, double eps)"
        " { double mhat = m / c1; double vhat = v / c2;"
        " return -lr * mhat / (sqrt(vhat) + eps); }",
        6,
    ),
    # NestAdam.step: alpha = lr * sqrt(1 - b2**t) / (1 - b1**t), once per boundary
    "np_nest_alpha": (
        "double np_nest_alpha(double lr, double b1, double b2, double t)"
        " { return lr * sqrt(1 - pow(b2, t)) / (1 - pow(b1, t)); }",
        4,
    ),
    # NestAdam.step: -alpha * m / (sqrt(v) + eps)
    "np_nest_adam_dw": (
        "double np_nest_adam_dw(double m, double v, double alpha, double eps)"
        " { return -alpha * m / (sqrt(v) + eps); }",
        4,
    ),
    # SGD.step: -lr * g
    "np_sgd_dw": ("double np_sgd_dw(double g, double lr) { return -lr * g; }", 2),
    # the gradient the optimizer steps on: averaged (g / n, training.average_gradient; n = 1 otherwise),
    # then trainable (0.0 where the projection is not trained: training.train_output, train_recurrent,
    # network.readout_bias)
    "np_grad_in": (
        "double np_grad_in(double g, double n, double on) { return on > 0.5 ? g / n : 0.0; }",
        3,
    ),
    # apply_updates: w + dw
    "np_step": ("double np_step(double w, double dw, double on) { return on > 0.5 ? w + dw : w; }", 3),
    # symmetric feedback (EpropSymmetric.feedback): B = the new W_out
    "np_pick": ("double np_pick(double now, double old, double on) { return on > 0.5 ? now : old; }", 3),
    # EpropAdaptive.adjust_updates: the update of W_out less lam * W_out (Kolen-Pollack's decay)
    "np_kp_dw": (
        "double np_kp_dw(double dw, double lam, double w, double on)"
        " { return on > 0.5 ? dw - lam * w : dw; }",
        4,
    ),
    # EpropAdaptive.after_update: B = (1 - lam) * B + (dw + lam * W_out), W_out before the update
    "np_kp_b": (
        "double np_kp_b(double B, double dw, double lam, double w)"
        " { return (1.0 - lam) * B + (dw + lam * w); }",
        4,
    ),
}

#: Constants of the rate regularizer on the recurrent group: c_reg, T (steps), f* (spikes per step); read
#: by the boundary update of a chunk and by the gradients computed in the binary (network/factorized.py).
REG_SHARED = "\nreg_c : 1 (shared)\nreg_T : 1 (shared)\nreg_f : 1 (shared)\n"
#: The boundary update's constants and the per-neuron regularization signal of the finished trial.
CHUNK_SHARED = (
    REG_SHARED
    + "feedback_follows : 1 (shared)\nfeedback_adapts : 1 (shared)\nkp_lam : 1 (shared)\n"
    + "avg_n : 1 (shared)\nrreg : 1\n"
)
#: How B moves at a boundary (``run_chunk(feedback_rule=…)``): the launch's ``feedback_follows`` and
#: ``feedback_adapts`` (0 or 1) for each way.
CHUNK_FEEDBACK_RULES = {"fixed": (0.0, 0.0), "symmetric": (1.0, 0.0), "adaptive": (0.0, 1.0)}
#: The readout's constants of the boundary update: the steps the gradient is averaged over (1: not
#: averaged) and whether the bias is trained (0 or 1).  Values of the launch.
CHUNK_READOUT_SHARED = "\navg_n : 1 (shared)\ntrain_b : 1 (shared)\n"
#: Whether a projection is trained (0 or 1), on each synapse object of a chunked network; a value of the
#: launch.
CHUNK_TRAIN = "\ntrain_w : 1 (shared)"
CHUNK_REGULARIZATION = "rreg = np_reg(count, reg_c, reg_T, reg_f)"

_ACTIVE = "active = int(t > t_first_update)\n"


def chunk_gradient(flush: bool, regularization: bool) -> str:
    """``gt``, the finished trial's gradient on an input or recurrent synapse (what the trainer logs)."""
    gt = "g"
    if flush:
        gt = f"np_add_mul({gt}, A_post, ebar)"
    if regularization:
        gt = f"np_add_mul({gt}, rreg_post, esum)"
    return f"gt = {gt}"


#: The optimizers the boundary update runs (``training.optimizer`` names): the C++ function of the step of
#: each Adam (None: SGD).
CHUNK_OPTIMIZERS = {"sgd": None, "adam": "np_adam_dw", "adam-nest": "np_nest_adam_dw"}


#: The batch's mean gradient of one element at a boundary of a chunked network of B copies side by side
#: (docs/model.md §8): ``trainer._batch_mean`` of the trials' gradients each averaged (g / n,
#: ``training.average_gradient``; n = 1 otherwise), then ``trainable`` (0.0 where the projection is not
#: trained).  ``np.mean`` over the trials (axis 0 of the stacked (B, …) gradients) adds them in trial order,
#: ((g_0 + g_1) + g_2) + …, and divides by B: the same operations here, copy after copy.  The element reads
#: the gradients of every copy of its own element (copy c's is ``E`` elements after copy c − 1's, E = the
#: elements of one copy) from the gradient array itself (``{data}``, ``{size}`` elements in all copies);
#: ``_vectorisation_idx`` is its index (Brian2 passes it to a function declared ``auto_vectorise``).  It
#: only reads, so the OpenMP split of the loop keeps the same sums.  Every copy computes the same mean, so
#: the copies' weights and moments stay equal.  ``{name}``, ``{data}``, ``{size}``, ``{batch}``: filled in
#: by :func:`batch_mean_function`.
BATCH_MEAN_TEMPLATE = (
    "double {name}(double n, double on, size_t _vectorisation_idx) {{"
    " if (!(on > 0.5)) return 0.0;"
    " const double* a = {data}; const size_t E = ({size}) / {batch};"
    " const size_t e = _vectorisation_idx % E;"
    " double s = a[e] / n;"
    " for (size_t c = 1; c < {batch}; c++) s = s + a[c * E + e] / n;"
    " return s / {batch}.0; }}"
)


def batch_mean_function(name: str, array: str, batch: int, size: int | None = None) -> str:
    """The C++ of :data:`BATCH_MEAN_TEMPLATE` for the gradient array ``array`` (cpp_standalone's name in
    namespace ``brian``) of a network of ``batch`` copies: ``size`` None for a synapse variable (a
    ``std::vector<double>`` whose size is learnt at launch), else the elements of all copies of a neuron
    variable (a ``double*``)."""
    if size is None:
        data, n = f"brian::{array}.data()", f"brian::{array}.size()"
    else:
        data, n = f"brian::{array}", str(int(size))
    return BATCH_MEAN_TEMPLATE.format(name=name, data=data, size=n, batch=int(batch))


def _chunk_dw(optimizer: str, g: str, sfx: str, m: str, v: str, train: str, mean: str | None = None) -> str:
    lr = f"in_trial_lr{sfx}"
    # averaged, then zero where not trained; ``mean``: the batch's mean of the copies' averaged gradients
    grad = f"np_grad_in({g}, avg_n{sfx}, {train})" if mean is None else f"{mean}(avg_n{sfx}, {train})"
    step = CHUNK_OPTIMIZERS[optimizer]
    if step is None:
        return f"dw = np_sgd_dw({grad}, {lr})\n"
    b1, b2, eps, t0 = (f"adam_{k}{sfx}" for k in ("b1", "b2", "eps", "t0"))
    # the step's factors of the boundary's step count: statements of shared values only, which Brian2
    # computes once per boundary (the update's scalar code), not once per synapse
    if step == "np_adam_dw":
        factors, dw = (
            f"c1_adam = np_one_minus_pow({b1}, n_adam)\nc2_adam = np_one_minus_pow({b2}, n_adam)\n",
            f"dw = np_adam_dw({m}, {v}, {lr}, c1_adam, c2_adam, {eps})\n",
        )
    else:
        factors = f"alpha_adam = np_nest_alpha({lr}, {b1}, {b2}, n_adam)\n"
        dw = f"dw = {step}({m}, {v}, alpha_adam, {eps})\n"
    return (
        f"n_adam = {t0} + floor(t / t_update_period + 0.5)\n" + factors + f"g_step = {grad}\n"
        f"{m} = np_adam_m({m}, g_step, {b1}, active)\n"
        f"{v} = np_adam_v({v}, g_step, {b2}, active)\n" + dw
    )


def chunk_update(optimizer: str, g: str, feedback: bool = False, mean: str | None = None) -> str:
    """The optimizer step of one synapse at a trial boundary, on gradient ``g`` (``gt`` or ``g``), averaged
    over the launch's ``avg_n`` steps and zero unless the projection is trained (``train_w``).

    ``feedback``: readout synapses (presynaptic: the recurrent group) also move their feedback weight B:
    where the launch's ``feedback_adapts`` is 1 (adaptive e-prop, Kolen–Pollack), W_out's update loses
    ``kp_lam`` W_out and B becomes (1 − λ) B + (ΔW_out + λ W_out) with the W_out before the step; where
    ``feedback_follows`` is 1 (symmetric e-prop), B = the new W_out; where both are 0, B stays (random
    e-prop).  Values of the launch, so switching between the rules never recompiles.

    ``mean``: the name of the :func:`batch_mean_function` of ``g`` (a network of several copies): the step
    takes the batch's mean gradient, the same on every copy.
    """
    dw = _chunk_dw(optimizer, g, "_post", "m_adam", "v_adam", "train_w", mean)
    if not feedback:
        return _ACTIVE + dw + "w = np_step(w, dw, active)\n"
    return (
        _ACTIVE
        + dw
        + "dw = np_kp_dw(dw, kp_lam_pre, w, feedback_adapts_pre)\n"
        + "B = np_pick(np_kp_b(B, dw, kp_lam_pre, w), B, active * feedback_adapts_pre)\n"
        + "w = np_step(w, dw, active)\n"
        + "B = np_pick(w, B, active * feedback_follows_pre)\n"
    )


def chunk_bias_update(optimizer: str, mean: str | None = None) -> str:
    """The bias's optimizer step at a trial boundary (``train_b``: whether the bias is trained; ``mean`` as
    for :func:`chunk_update`)."""
    dw = _chunk_dw(optimizer, "gb", "", "mb_adam", "vb_adam", "train_b", mean)
    return _ACTIVE + dw + "b = np_step(b, dw, active)\n"


def chunk_reset(
    group: str, *, adaptation: bool = False, regularization: bool = False, factorized: bool = False
) -> str:
    """Every state variable of ``group`` back to its value at rest (the start of a fresh launch).

    ``group``: ``input``, ``recurrent``, ``recurrent_lazy`` (the event-driven factors), ``readout``,
    ``hidden_synapses`` or ``output_synapses``.  The recurrent group keeps ``I_in``: it already holds the
    new trial's first input spikes.  ``factorized``: the synapses of a network whose gradients the binary
    computes at the boundary (no eligibility state; g is written there, whole).
    """
    names = {
        "input": ["zbar"],
        "recurrent": "v a z r refr psi I_rec zbar zout count L".split(),
        "recurrent_lazy": ["Dk", "A"],
        "readout": "y I_out err gb bf expsum".split(),
        "hidden_synapses": ["g"]
        if factorized
        else ["ebar", "g"] + (["eps_a"] if adaptation else []) + (["esum"] if regularization else []),
        "output_synapses": ["g"],
    }[group]
    code = "".join(f"{n} = 0.0\n" for n in names)
    return code + ("D = 1.0\nR = 1.0\n" if group == "recurrent_lazy" else "")
