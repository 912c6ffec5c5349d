"""A rule's own eligibility trace (docs/plugins.md, "A rule with its own trace"): its NumPy reference.

e-prop's eligibility is derived from the neuron model (:mod:`neuroplast.gradients.derived`); a rule may
bring its own instead — a :class:`Trace`: variables of every presynaptic neuron (input and recurrent),
updated each step from its drive pre_t (c_in x_t, or c_in z_{t−1}), and the eligibility e_t of a synapse
as an expression of those variables and the postsynaptic ψ_t.  The rest is e-prop's: ē_t = κ ē_{t−1} + e_t,
ĝ = Σ_t L_t ē_t (+ the regularizer's r Σ_t e_t), with the rule's learning signal L_t = c_out B err_t.

The same :class:`Trace` is the Brian2 code of the simulation (:mod:`neuroplast.network.model_code`) and,
here, its NumPy reference (:func:`trace_eligibilities`, :func:`trace_grads`): the statements are evaluated as
written, in order.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Trace", "trace_eligibilities", "trace_grads", "trial_trace_grads"]

#: Functions a trace's statements may call.
_FUNCTIONS = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt, "tanh": np.tanh}


@dataclass(frozen=True)
class Trace:
    """A rule's own eligibility trace.

    Parameters
    ----------
    name : str
        For messages and the build key.
    variables : tuple of str
        Per presynaptic neuron, 0 at rest.
    update : tuple of (str, str)
        Statements ``(variable, expression)`` run in order at every step; they read the variables, ``pre``
        (the presynaptic drive of this step) and :attr:`constants`.
    eligibility : str
        e_t of a synapse: an expression of the (presynaptic) variables, ``psi`` (the postsynaptic ψ_t) and
        the constants.
    constants : tuple of (str, float)
        Named numbers (e.g. decay factors).

    Raises
    ------
    ValueError
        One line naming the trace: an unknown name, a call, an assignment of something that is not a
        variable.
    """

    name: str
    variables: tuple[str, ...]
    update: tuple[tuple[str, str], ...]
    eligibility: str
    constants: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "variables", tuple(self.variables))
        object.__setattr__(self, "update", tuple((str(t), str(e)) for t, e in self.update))
        object.__setattr__(self, "constants", tuple((str(k), float(v)) for k, v in self.constants))
        consts = {k for k, _ in self.constants}
        known = set(self.variables) | consts | {"pre"}
        for target, expr in self.update:
            if target not in self.variables:
                raise ValueError(f"trace {self.name!r}: {target!r} is not one of its variables")
            _check(expr, known, f"trace {self.name!r}, {target} ← {expr}")
        _check(self.eligibility, set(self.variables) | consts | {"psi"}, f"trace {self.name!r}, eligibility")

    @property
    def constant_values(self) -> dict[str, float]:
        """:attr:`constants` as a dict."""
        return dict(self.constants)


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


def trace_eligibilities(
    trace: Trace, pres: Mapping[str, np.ndarray], psi: np.ndarray
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Yield ``(t, {projection: e_t (N, n_pre)})``: the trace's eligibility of every synapse at every step.

    Parameters
    ----------
    trace : Trace
    pres : mapping str -> ndarray (T, n_pre)
        The presynaptic drive of each projection (c_in x_t, c_in z_{t−1}).
    psi : ndarray (T, N)
        The postsynaptic pseudo-derivative.
    """
    consts = trace.constant_values
    update = [(t, compile(e, f"<trace {trace.name}: {t}>", "eval")) for t, e in trace.update]
    elig = compile(trace.eligibility, f"<trace {trace.name}: eligibility>", "eval")
    state = {k: {v: np.zeros(p.shape[1]) for v in trace.variables} for k, p in pres.items()}
    for t in range(psi.shape[0]):
        out = {}
        for k, pre in pres.items():
            env: dict[str, Any] = {**_FUNCTIONS, **consts, **state[k], "pre": pre[t]}
            for target, code in update:
                env[target] = eval(code, {"__builtins__": {}}, env)  # names checked by Trace
            state[k] = {v: np.asarray(env[v], dtype=float) for v in trace.variables}
            col = {v: a[None, :] for v, a in state[k].items()}
            e = eval(elig, {"__builtins__": {}}, {**_FUNCTIONS, **consts, **col, "psi": psi[t][:, None]})
            out[k] = np.broadcast_to(e, (psi.shape[1], pre.shape[1]))
        yield t, out


def trace_grads(
    trace: Trace,
    pres: Mapping[str, np.ndarray],
    psi: np.ndarray,
    L: np.ndarray,
    kappa: float,
    reg: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Σ_t L_t ē_t (+ r Σ_t e_t) and Σ_t e_t of every projection, with the trace's eligibility.

    Parameters
    ----------
    trace : Trace
    pres : mapping str -> ndarray (T, n_pre)
    psi : ndarray (T, N)
    L : ndarray (T, N)
        The learning signal c_out B err_t.
    kappa : float
        The readout decay (ē's filter).
    reg : ndarray (N,), optional
        The rate regularizer's signal r, added as r Σ_t e_t.

    Returns
    -------
    grads, esum : dict str -> ndarray (N, n_pre)
        Dense, unmasked.
    """
    N = psi.shape[1]
    g = {k: np.zeros((N, p.shape[1])) for k, p in pres.items()}
    ebar = {k: np.zeros_like(v) for k, v in g.items()}
    esum = {k: np.zeros_like(v) for k, v in g.items()}
    for t, es in trace_eligibilities(trace, pres, psi):
        for k, e in es.items():
            ebar[k] = kappa * ebar[k] + e
            g[k] += L[t][:, None] * ebar[k]
            esum[k] += e
    if reg is not None:
        g = {k: v + reg[:, None] * esum[k] for k, v in g.items()}
    return g, esum


def trial_trace_grads(trial: Any, trace: Trace) -> dict[str, np.ndarray]:
    """A rule's gradient of one :class:`~neuroplast.gradients.trial.TrialData` with its own ``trace``:
    Σ_t L_t ē_t + r Σ_t e_t (L_t = c_out B err_t with the trial's B), masked; the readout's exact."""
    from neuroplast.gradients.trial import mask_grads
    from neuroplast.model.signals import output_grads

    p, w = trial.params, trial.weights
    B = w.w_out.T if trial.feedback is None else trial.feedback
    L = p.readout_scale * trial.err @ B.T
    g, _ = trace_grads(trace, dict(trial.pre), trial.psi, L, p.kappa, trial.reg)
    g["output"], g["bias"] = output_grads(p, trial.z, trial.err)
    return mask_grads(w, g)
