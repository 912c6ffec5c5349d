"""A rule's own eligibility trace and learning signal (docs/plugins.md, "A rule with its own trace"): the
contract and its NumPy reference.

e-prop's eligibility is derived from the neuron model (:mod:`neuroplast.gradients.derived`); a rule may
bring its own instead — a :class:`Trace` — and, with it, its own learning signal.  A trace holds state of
three kinds, each with statements run in order at every step t:

1. ``variables``: per presynaptic neuron (input and recurrent), updated from its drive ``pre`` (pre_t =
   c_in x_t, or c_in z_{t−1});
2. ``post_variables``: per recurrent (postsynaptic) neuron, updated from its ``psi`` (ψ_t), its spike ``z``
   (z_t) and e-prop's learning signal ``L`` (c_out (B err_t)_j);
3. ``synapse_variables``: per synapse, updated from all of the above (the presynaptic variables of its
   source, the postsynaptic ones of its target) and its own.

Then the synapse's eligibility e_t is an expression of those, ψ_t and z_t, and the neuron's learning signal
L^rule_t an expression of ``L``, its postsynaptic variables, ψ_t and z_t (default ``L``: e-prop's).  The
rest is e-prop's: ē_t = κ ē_{t−1} + e_t, ĝ = Σ_t L^rule_t ē_t (+ the regularizer's r Σ_t e_t).

The same :class:`Trace` is the Brian2 code of the simulation (:mod:`neuroplast.network.model_code`) and,
here, its NumPy reference (:func:`trace_eligibilities`, :func:`trace_grads`): the statements are evaluated as
written, in order, in the order above.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Trace",
    "eprop_signal",
    "trace_eligibilities",
    "trace_grads",
    "trace_signals",
    "trial_trace_grads",
]

#: Functions a trace's statements may call.
_FUNCTIONS = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt, "tanh": np.tanh}
#: What the simulation gives a trace at step t (besides its own variables and constants).
PRE, PSI, SPIKE, SIGNAL = "pre", "psi", "z", "L"


@dataclass(frozen=True)
class Trace:
    """A rule's own eligibility trace (and, optionally, its own learning signal).

    Parameters
    ----------
    name : str
        For messages and the build key.
    variables : tuple of str
        Per presynaptic neuron, 0 at rest.
    update : tuple of (str, str)
        Statements ``(variable, expression)`` run in order at every step; they read the variables, ``pre``
        (the presynaptic drive of this step, dimensionless: c_in x_t or c_in z_{t−1}) and :attr:`constants`.
    eligibility : str
        e_t of a synapse: an expression of the presynaptic, postsynaptic and synapse variables, ``psi``
        (the postsynaptic ψ_t, 1/mV·mV = dimensionless), ``z`` (the postsynaptic spike z_t) and the
        constants.
    constants : tuple of (str, float)
        Named numbers (e.g. decay factors exp(−dt/τ)).
    post_variables : tuple of str
        Per recurrent neuron, 0 at rest.
    post_update : tuple of (str, str)
        Their statements, run after every presynaptic update of the step; they read the postsynaptic
        variables, ``psi``, ``z``, ``L`` (e-prop's learning signal c_out (B err_t)_j) and the constants.
    synapse_variables : tuple of str
        Per synapse, 0 at rest.
    synapse_update : tuple of (str, str)
        Their statements, run after the postsynaptic update, before e_t; they read every variable of the
        trace, ``psi``, ``z``, ``L`` and the constants.
    signal : str
        The rule's learning signal of a neuron: an expression of ``L``, the postsynaptic variables,
        ``psi``, ``z`` and the constants (default ``"L"``: e-prop's own).

    Raises
    ------
    ValueError
        One line naming the trace: an unknown name, a call, a variable declared twice or with a reserved
        name, an assignment of something that is not a variable of its kind.
    """

    name: str
    variables: tuple[str, ...]
    update: tuple[tuple[str, str], ...]
    eligibility: str
    constants: tuple[tuple[str, float], ...] = ()
    post_variables: tuple[str, ...] = ()
    post_update: tuple[tuple[str, str], ...] = ()
    synapse_variables: tuple[str, ...] = ()
    synapse_update: tuple[tuple[str, str], ...] = ()
    signal: str = SIGNAL

    def __post_init__(self) -> None:
        for field in ("variables", "post_variables", "synapse_variables"):
            object.__setattr__(self, field, tuple(str(v) for v in getattr(self, field)))
        for field in ("update", "post_update", "synapse_update"):
            object.__setattr__(self, field, tuple((str(t), str(e)) for t, e in getattr(self, field)))
        object.__setattr__(self, "constants", tuple((str(k), float(v)) for k, v in self.constants))
        object.__setattr__(self, "signal", str(self.signal))
        consts = [k for k, _ in self.constants]
        declared = [*self.variables, *self.post_variables, *self.synapse_variables, *consts]
        for v in declared:
            if not v.isidentifier() or v in (PRE, PSI, SPIKE, SIGNAL) or v in _FUNCTIONS:
                raise ValueError(f"trace {self.name!r}: {v!r} cannot name a variable or constant")
        twice = sorted({v for v in declared if declared.count(v) > 1})
        if twice:
            raise ValueError(f"trace {self.name!r}: {twice[0]!r} is declared more than once")
        pre, post, syn = set(self.variables), set(self.post_variables), set(self.synapse_variables)
        local = {PSI, SPIKE, *consts}
        self._statements(self.update, pre, pre | {PRE, *consts}, "")
        self._statements(self.post_update, post, post | local | {SIGNAL}, "postsynaptic ")
        self._statements(self.synapse_update, syn, pre | post | syn | local | {SIGNAL}, "synapse ")
        _check(self.eligibility, pre | post | syn | local, f"trace {self.name!r}, eligibility")
        _check(self.signal, post | local | {SIGNAL}, f"trace {self.name!r}, learning signal")

    def _statements(
        self, update: tuple[tuple[str, str], ...], own: set[str], known: set[str], kind: str
    ) -> None:
        for target, expr in update:
            if target not in own:
                raise ValueError(f"trace {self.name!r}: {target!r} is not one of its {kind}variables")
            _check(expr, known, f"trace {self.name!r}, {target} ← {expr}")

    @property
    def constant_values(self) -> dict[str, float]:
        """:attr:`constants` as a dict."""
        return dict(self.constants)

    def _names(self, exprs: list[str]) -> set[str]:
        return {n.id for e in exprs for n in ast.walk(ast.parse(e, mode="eval")) if isinstance(n, ast.Name)}

    @property
    def reads(self) -> frozenset[str]:
        """Which of the simulation's per-step values (``pre``, ``psi``, ``z``, ``L``) the trace's state and
        eligibility read (its :attr:`signal` not counted)."""
        exprs = [e for _, e in self.update + self.post_update + self.synapse_update] + [self.eligibility]
        return frozenset(self._names(exprs) & {PRE, PSI, SPIKE, SIGNAL})

    @property
    def own_signal(self) -> bool:
        """Whether the learning signal is the rule's own (not e-prop's ``L``)."""
        return self.signal.strip() != SIGNAL


def _check(expr: str, known: set[str], where: str) -> None:
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        raise ValueError(f"{where}: not an expression") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS and len(node.args) == 1):
                raise ValueError(f"{where}: only calls f(x) of {', '.join(_FUNCTIONS)} are allowed")
        elif isinstance(node, ast.Name) and node.id not in known and node.id not in _FUNCTIONS:
            raise ValueError(f"{where}: unknown name {node.id!r}")
        elif not isinstance(
            node,
            (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Load, ast.operator, ast.unaryop)
            + (ast.Call, ast.Name),
        ):
            raise ValueError(f"{where}: {type(node).__name__} is not allowed")


def _run(code: list[tuple[str, Any]], env: dict[str, Any]) -> None:
    for target, c in code:
        env[target] = eval(c, {"__builtins__": {}}, env)  # names checked by Trace


def _compiled(trace: Trace, update: tuple[tuple[str, str], ...]) -> list[tuple[str, Any]]:
    return [(t, compile(e, f"<trace {trace.name}: {t}>", "eval")) for t, e in update]


def _per_step(
    trace: Trace,
    pres: Mapping[str, np.ndarray],
    psi: np.ndarray,
    z: np.ndarray | None = None,
    L: np.ndarray | None = None,
) -> Iterator[tuple[int, dict[str, np.ndarray], np.ndarray | None]]:
    """Yield ``(t, {projection: e_t (N, n_pre)}, L^rule_t (N,) or None when no L is given)``."""
    T, N = psi.shape
    missing = [n for n, a in ((SPIKE, z), (SIGNAL, L)) if a is None and n in trace.reads]
    if missing:
        raise ValueError(f"trace {trace.name!r} reads {', '.join(missing)}: it must be given")
    zero = np.zeros((T, N))
    z = zero if z is None else np.asarray(z, dtype=float)
    consts = trace.constant_values
    update, post_update = _compiled(trace, trace.update), _compiled(trace, trace.post_update)
    syn_update = _compiled(trace, trace.synapse_update)
    elig = compile(trace.eligibility, f"<trace {trace.name}: eligibility>", "eval")
    signal = compile(trace.signal, f"<trace {trace.name}: learning signal>", "eval")
    state = {k: {v: np.zeros(p.shape[1]) for v in trace.variables} for k, p in pres.items()}
    post = {v: np.zeros(N) for v in trace.post_variables}
    syn = {k: {v: np.zeros((N, p.shape[1])) for v in trace.synapse_variables} for k, p in pres.items()}
    for t in range(T):
        for k, pre in pres.items():
            env: dict[str, Any] = {**_FUNCTIONS, **consts, **state[k], PRE: pre[t]}
            _run(update, env)
            state[k] = {v: np.asarray(env[v], dtype=float) for v in trace.variables}
        here = {PSI: psi[t], SPIKE: z[t], SIGNAL: zero[t] if L is None else L[t]}
        env = {**_FUNCTIONS, **consts, **post, **here}
        _run(post_update, env)
        post = {v: np.broadcast_to(np.asarray(env[v], dtype=float), (N,)) for v in trace.post_variables}
        col = {n: a[:, None] for n, a in {**post, **here}.items()}
        out = {}
        for k, pre in pres.items():
            env = {**_FUNCTIONS, **consts, **{v: a[None, :] for v, a in state[k].items()}, **col, **syn[k]}
            _run(syn_update, env)
            shape = (N, pre.shape[1])
            syn[k] = {
                v: np.broadcast_to(np.asarray(env[v], dtype=float), shape) for v in trace.synapse_variables
            }
            out[k] = np.broadcast_to(eval(elig, {"__builtins__": {}}, {**env, **syn[k]}), shape)
        sig = None
        if L is not None:
            env = {**_FUNCTIONS, **consts, **post, **here}
            sig = np.broadcast_to(eval(signal, {"__builtins__": {}}, env), (N,))
        yield t, out, sig


def trace_eligibilities(
    trace: Trace,
    pres: Mapping[str, np.ndarray],
    psi: np.ndarray,
    z: np.ndarray | None = None,
    L: np.ndarray | None = None,
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Yield ``(t, {projection: e_t (N, n_pre)})``: the trace's eligibility of every synapse at every step.

    Parameters
    ----------
    trace : Trace
    pres : mapping str -> ndarray (T, n_pre)
        The presynaptic drive of each projection (c_in x_t, c_in z_{t−1}).
    psi : ndarray (T, N)
        The postsynaptic pseudo-derivative.
    z : ndarray (T, N), optional
        The postsynaptic spikes z_t; needed when the trace reads ``z``.
    L : ndarray (T, N), optional
        e-prop's learning signal; needed when a postsynaptic or synapse update reads ``L``.
    """
    for t, es, _ in _per_step(trace, pres, psi, z, L):
        yield t, es


def trace_signals(trace: Trace, psi: np.ndarray, L: np.ndarray, z: np.ndarray | None = None) -> np.ndarray:
    """The rule's learning signal L^rule_t of every neuron, (T, N): :attr:`Trace.signal` of ``L``, the
    postsynaptic variables, ψ_t and z_t (``L`` itself for e-prop's signal)."""
    T = psi.shape[0]
    return np.array([s for _, _, s in _per_step(trace, {}, psi, z, L)]).reshape(T, psi.shape[1])


def trace_grads(
    trace: Trace,
    pres: Mapping[str, np.ndarray],
    psi: np.ndarray,
    L: np.ndarray,
    kappa: float,
    reg: np.ndarray | None = None,
    z: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Σ_t L^rule_t ē_t (+ r Σ_t e_t) and Σ_t e_t of every projection, with the trace's eligibility and
    learning signal.

    Parameters
    ----------
    trace : Trace
    pres : mapping str -> ndarray (T, n_pre)
    psi : ndarray (T, N)
    L : ndarray (T, N)
        e-prop's learning signal c_out B err_t (the rule's own, :attr:`Trace.signal`, is computed from it).
    kappa : float
        The readout decay (ē's filter).
    reg : ndarray (N,), optional
        The rate regularizer's signal r, added as r Σ_t e_t.
    z : ndarray (T, N), optional
        The postsynaptic spikes z_t, for a trace that reads ``z``.

    Returns
    -------
    grads, esum : dict str -> ndarray (N, n_pre)
        Dense, unmasked.
    """
    N = psi.shape[1]
    g = {k: np.zeros((N, p.shape[1])) for k, p in pres.items()}
    ebar = {k: np.zeros_like(v) for k, v in g.items()}
    esum = {k: np.zeros_like(v) for k, v in g.items()}
    for _, es, sig in _per_step(trace, pres, psi, z, L):
        assert sig is not None
        for k, e in es.items():
            ebar[k] = kappa * ebar[k] + e
            g[k] += sig[:, None] * ebar[k]
            esum[k] += e
    if reg is not None:
        g = {k: v + reg[:, None] * esum[k] for k, v in g.items()}
    return g, esum


def eprop_signal(trial: Any, feedback: np.ndarray | None) -> np.ndarray | None:
    """e-prop's learning signal L_t = c_out B err_t (T, N) of a trial (anything with ``params`` and ``err``:
    a :class:`~neuroplast.gradients.trial.TrialData` or a ``ModelTrial``) with feedback B (None: no B)."""
    if feedback is None:
        return None
    return trial.params.readout_scale * trial.err @ np.asarray(feedback, dtype=float).T


def trial_trace_grads(trial: Any, trace: Trace) -> dict[str, np.ndarray]:
    """A rule's gradient of one :class:`~neuroplast.gradients.trial.TrialData` with its own ``trace``:
    Σ_t L^rule_t ē_t + r Σ_t e_t (L^rule_t from e-prop's L_t = c_out B err_t with the trial's B), masked;
    the readout's exact."""
    from neuroplast.gradients.trial import mask_grads
    from neuroplast.model.signals import output_grads

    p, w = trial.params, trial.weights
    L = eprop_signal(trial, w.w_out.T if trial.feedback is None else trial.feedback)
    g, _ = trace_grads(trace, dict(trial.pre), trial.psi, L, p.kappa, trial.reg, z=trial.z)
    g["output"], g["bias"] = output_grads(p, trial.z, trial.err)
    return mask_grads(w, g)
