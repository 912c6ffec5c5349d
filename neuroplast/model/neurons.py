"""Neuron models as their discrete-time update, written once (docs/model.md §10).

A :class:`NeuronModel` is the step of one recurrent neuron, h_t = f(h_{t−1}, z_{t−1}, c_t), written as
statements, and its threshold argument u(h_t) (z_t = H(u_t), ψ_t = (γ/v_th) s(u_t/v_th), both held at 0
while refractory, docs/model.md §1).  Everything else is derived from it (:mod:`neuroplast.model.derive`):
the NumPy step, the Jacobians of the eligibility recursion and of exact BPTT's backward step.

The statements run in order, like Python or Brian2's abstract code: a name means its current value, so
a state variable updated by an earlier statement already holds its value at t (write a temporary,
``v_prev = v``, to keep the old one).  The names a statement may use:

* the state variables (:attr:`NeuronModel.state`) and temporaries assigned by earlier statements;
* ``z``, the neuron's own spike of the previous step z_{t−1} (0/1);
* ``c``, the synaptic drive of this step c_t = c_in (W_in x_t + W_rec z_{t−1});
* ``v_th`` (the threshold's scale, ``network.v_th``) and the model's :attr:`NeuronModel.parameters`;
* the functions ``exp``, ``log``, ``sqrt``, ``tanh``, ``sin``, ``cos`` and ``R``: ``R(term)`` marks the
  reset term (its value is ``term``; e-prop and BPTT with a detached reset do not differentiate through it).

Models register by name in :data:`NEURONS` (entry-point group ``neuroplast.neurons`` for third parties;
a plugin that fails to load warns and is skipped).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuroplast.registry import Registry

__all__ = [
    "alif_values",
    "DEFAULT_NEURON",
    "FUNCTIONS",
    "INPUTS",
    "NEURONS",
    "NeuronModel",
    "Parameter",
    "get_neuron",
    "register_neuron",
]

#: Names every step may read besides the model's own: z_{t−1}, c_t and the threshold scale.
INPUTS = ("z", "c", "v_th")
#: The model of ``network.neuron`` when the key is omitted: the LIF/ALIF mix of docs/model.md §1, which the
#: Brian2 network, the hand-written gradients and the chunked engine implement.
DEFAULT_NEURON = "alif"
#: Functions a statement may call (``R`` marks the reset term).
FUNCTIONS = ("exp", "log", "sqrt", "tanh", "sin", "cos", "R")


@dataclass(frozen=True)
class Parameter:
    """A parameter of a neuron model, as its equations name it.

    Attributes
    ----------
    name : str
        Its symbol in the statements (``alpha``).
    doc : str
        What it is, with its unit.
    key : str
        The ``[network]`` config key it comes from (``tau_m_ms``).
    default : float
        The key's default value.
    decay : bool
        The symbol is the decay factor exp(−dt/τ) of the time constant τ given by ``key`` (ms); else it
        is the key's value itself.
    per_neuron : bool
        Whether it may differ between neurons (an (N,) array).
    """

    name: str
    doc: str
    key: str = ""
    default: float = 0.0
    decay: bool = False
    per_neuron: bool = False


@dataclass(frozen=True)
class NeuronModel:
    """One recurrent neuron's discrete-time update.

    Parameters
    ----------
    name : str
        Registry name (the value of ``network.neuron``).
    summary : str
        One line for the user.
    state : tuple of str
        The state variables h (each 0 at rest), e.g. ``("v", "a")``.
    step : tuple of (str, str)
        The statements ``(target, expression)``, in order; every state variable is assigned exactly once,
        any other target is a temporary.
    threshold : str
        u(h_t), an expression of the new state (z_t = H(u_t)).
    parameters : tuple of Parameter
        The parameters the statements use.
    references : tuple of str
        Where the equations come from.
    kind : str
        What one of its neurons is called in analyses and figures (default: the model's name), e.g.
        ``"LIF"``.
    adaptation : tuple of str
        Parameters whose nonzero value makes a neuron adapt (``("beta",)`` for ``alif``); empty: none
        of its neurons adapts.
    adaptive_kind : str
        What an adapting neuron is called (default: ``kind``), e.g. ``"ALIF"``.

    Raises
    ------
    ValueError
        One line naming the model and the statement: unknown names, a state variable assigned twice or
        never, a syntax error, a call of an unknown function.
    """

    name: str
    summary: str
    state: tuple[str, ...]
    step: tuple[tuple[str, str], ...]
    threshold: str
    parameters: tuple[Parameter, ...] = ()
    references: tuple[str, ...] = field(default=())
    kind: str = ""
    adaptation: tuple[str, ...] = ()
    adaptive_kind: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", tuple(self.state))
        object.__setattr__(self, "step", tuple((str(t), str(e)) for t, e in self.step))
        object.__setattr__(self, "parameters", tuple(self.parameters))
        object.__setattr__(self, "adaptation", tuple(self.adaptation))
        _check_model(self)

    def neuron_kinds(self, values: Any, n_rec: int) -> tuple[np.ndarray, np.ndarray]:
        """Per neuron, its kind's name and whether it adapts (:attr:`kind`, :attr:`adaptation`).

        Parameters
        ----------
        values : mapping
            The model's parameter values (floats or (N,) arrays).
        n_rec : int
            N.

        Returns
        -------
        kinds : ndarray (N,) of str
        adaptive : ndarray (N,) of bool
            A neuron adapts where any parameter of :attr:`adaptation` is nonzero.
        """
        adaptive = np.zeros(n_rec, dtype=bool)
        for name in self.adaptation:
            adaptive |= np.broadcast_to(np.asarray(values[name], dtype=float) != 0, (n_rec,))
        plain = self.kind or self.name
        kinds = np.where(adaptive, self.adaptive_kind or plain, plain).astype(str)
        return kinds, adaptive

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """The symbols of :attr:`parameters`, in order."""
        return tuple(p.name for p in self.parameters)

    @property
    def temporaries(self) -> tuple[str, ...]:
        """Targets of :attr:`step` that are not state variables, in order."""
        return tuple(t for t, _ in self.step if t not in self.state)

    def equations(self) -> str:
        """The model as text: its statements, its threshold and spike, one per line."""
        lines = [f"{t} ← {e}" for t, e in self.step]
        lines.append(f"u = {self.threshold};   z = H(u) · (1 − r̂);   ψ = (γ / v_th) s(u / v_th) · (1 − r̂)")
        return "\n".join(lines)


def _names(expr: str, where: str) -> tuple[set[str], set[str]]:
    """(names read, functions called) of an expression; a syntax error is one line naming ``where``."""
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"{where}: not an expression ({exc.msg}): {expr!r}") from None
    names, calls = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.keywords or len(node.args) != 1:
                raise ValueError(f"{where}: only calls f(x) of {', '.join(FUNCTIONS)} are allowed: {expr!r}")
            calls.add(node.func.id)
        elif isinstance(node, ast.Name):
            names.add(node.id)
        elif not isinstance(
            node, (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Load, ast.operator, ast.unaryop)
        ):
            raise ValueError(f"{where}: {type(node).__name__} is not allowed in a statement: {expr!r}")
    return names - calls, calls


def _check_model(m: NeuronModel) -> None:
    what = f"neuron model {m.name!r}"
    if not m.name.strip():
        raise ValueError("a neuron model needs a non-empty name")
    if not m.state:
        raise ValueError(f"{what}: no state variables")
    params = m.parameter_names
    reserved = set(INPUTS) | set(FUNCTIONS)
    for name in (*m.state, *params):
        if not name.isidentifier() or name in reserved or name.startswith("_"):
            raise ValueError(
                f"{what}: {name!r} cannot name a state variable or parameter (reserved or invalid)"
            )
    if len(set(m.state) | set(params)) != len(m.state) + len(params):
        raise ValueError(f"{what}: the names of state variables and parameters must be distinct")
    known = set(m.state) | set(params) | {"z", "c", "v_th"}
    assigned: list[str] = []
    for k, (target, expr) in enumerate(m.step):
        where = f"{what}, statement {k + 1} ({target} ← …)"
        if not target.isidentifier() or target in reserved or target in params or target.startswith("_"):
            raise ValueError(f"{where}: cannot assign {target!r}")
        names, calls = _names(expr, where)
        bad = calls - set(FUNCTIONS)
        if bad:
            raise ValueError(f"{where}: unknown function {sorted(bad)[0]!r} (known: {', '.join(FUNCTIONS)})")
        unknown = names - known
        if unknown:
            raise ValueError(f"{where}: unknown name {sorted(unknown)[0]!r}")
        if target in m.state and target in assigned:
            raise ValueError(f"{where}: state variable {target!r} assigned twice")
        assigned.append(target)
        known.add(target)
    missing = [s for s in m.state if s not in assigned]
    if missing:
        raise ValueError(f"{what}: state variable {missing[0]!r} is never assigned")
    names, calls = _names(m.threshold, f"{what}, threshold")
    if calls - (set(FUNCTIONS) - {"R"}):
        raise ValueError(f"{what}, threshold: only {', '.join(FUNCTIONS[:-1])} may be called")
    unknown = names - (set(m.state) | set(params) | {"v_th"})
    if unknown:
        raise ValueError(f"{what}, threshold: unknown name {sorted(unknown)[0]!r} (state, parameters, v_th)")
    if not names & set(m.state):
        raise ValueError(f"{what}, threshold: u must depend on the state")
    bad = [a for a in m.adaptation if a not in params]
    if bad:
        raise ValueError(f"{what}: adaptation names {bad[0]!r}, which is not one of its parameters")


def _check(obj: object, name: str) -> None:
    if not isinstance(obj, NeuronModel):
        raise TypeError(f"neuron model {name!r} is not a neuroplast.model.neurons.NeuronModel")
    if obj.name.strip().lower() != name.strip().lower():
        raise ValueError(f"neuron model registered as {name!r} is named {obj.name!r}")


#: Name → :class:`NeuronModel` (third parties: :func:`register_neuron` or the ``neuroplast.neurons``
#: entry-point group).
NEURONS: Registry[NeuronModel] = Registry("neuron", check=_check)


def register_neuron(model: NeuronModel, *, replace: bool = False) -> NeuronModel:
    """Add ``model`` to :data:`NEURONS` under its name (a duplicate raises ``ValueError``)."""
    return NEURONS.register(model.name, model, replace=replace)


def alif_values(params: Any) -> dict[str, Any]:
    """The ``alif`` model's parameter values from :class:`~neuroplast.model.params.ModelParams` (α, and ρ, β
    per neuron): the one place where the two descriptions of the LIF/ALIF network meet."""
    return {"alpha": params.alpha, "rho": np.asarray(params.rho), "beta": np.asarray(params.beta)}


def get_neuron(name: str) -> NeuronModel:
    """The model registered as ``name`` (``KeyError`` listing the known names otherwise)."""
    return NEURONS.get(name)


_TAU_M = Parameter("alpha", "membrane decay exp(−dt/τ_m) per step", "tau_m_ms", 30.0, decay=True)

#: docs/model.md §1: the LIF/ALIF mix of every neuroplast run so far (β_j = 0: a LIF neuron).
ALIF = register_neuron(
    NeuronModel(
        "alif",
        "LIF and ALIF neurons (adaptive threshold v_th + β a; β = 0: LIF), reset by subtraction",
        state=("v", "a"),
        step=(("v", "alpha * v + c - R(v_th * z)"), ("a", "rho * a + z")),
        threshold="v - (v_th + beta * a)",
        parameters=(
            _TAU_M,
            Parameter("rho", "adaptation decay exp(−dt/τ_a) per step", "tau_a_ms", 2000.0, True, True),
            Parameter(
                "beta", "threshold adaptation strength β (units of v_th per a)", "beta", 0.0, False, True
            ),
        ),
        references=("Bellec et al. 2020, Nat. Commun. 11:3625, Methods (LIF, ALIF)",),
        kind="LIF",
        adaptation=("beta",),
        adaptive_kind="ALIF",
    )
)

#: docs/model.md §10: current-based LIF with an exponential synaptic current.
LIF_SYN = register_neuron(
    NeuronModel(
        "lif_syn",
        "current-based LIF with an exponential synaptic current I (τ_syn), reset by subtraction",
        state=("I", "v"),
        step=(("I", "alpha_s * I + c"), ("v", "alpha * v + I - R(v_th * z)")),
        threshold="v - v_th",
        parameters=(
            _TAU_M,
            Parameter("alpha_s", "synaptic-current decay exp(−dt/τ_syn) per step", "tau_syn_ms", 5.0, True),
        ),
        references=("Zenke & Ganguli 2018, Neural Comput. 30:1514 (SuperSpike's current-based LIF)",),
        kind="LIF (syn. current)",
    )
)

#: docs/model.md §10: adaptive LIF with subthreshold coupling (AdLIF).
ADLIF = register_neuron(
    NeuronModel(
        "adlif",
        "adaptive LIF: an adaptation current w driven by v (subthreshold, a) and by spikes (b)",
        state=("v", "w"),
        step=(
            ("v_prev", "v"),
            ("v", "alpha * v + (1 - alpha) * (c - w) - R(v_th * z)"),
            ("w", "rho_w * w + (1 - rho_w) * (adapt_a * v_prev + adapt_b * z)"),
        ),
        threshold="v - v_th",
        parameters=(
            _TAU_M,
            Parameter("rho_w", "adaptation-current decay exp(−dt/τ_w) per step", "tau_w_ms", 200.0, True),
            Parameter("adapt_a", "subthreshold coupling a (v to w)", "adapt_a", 0.5),
            Parameter("adapt_b", "spike-triggered adaptation b (units of v_th)", "adapt_b", 0.5),
        ),
        references=("Bittar & Garner 2022, Front. Neurosci. 16:865897 (AdLIF)",),
        kind="LIF",
        adaptation=("adapt_a", "adapt_b"),
        adaptive_kind="AdLIF",
    )
)
