"""The Brian2 statements of any :class:`~neuroplast.model.neurons.NeuronModel`, generated from its equations
(docs/model.md §10).  Strings only: no Brian2 object is created and Brian2 is not imported here.

The network of a model other than ``alif`` (:class:`~neuroplast.network.builder.Brian2Network` with
``neuron``) keeps the schedule of :mod:`.equations` and replaces the recurrent neurons' variables, update,
threshold and the per-synapse eligibility with what :func:`model_code` derives:

* the recurrent update runs the model's statements as written (the same operations in the same order as
  the NumPy reference :func:`neuroplast.model.stepper.simulate_model`), with the drive
  c_t = c_in (I_in + I_rec), ``R(term)`` as ``(term)``, then u, ψ and the refractory logic of the ``alif``
  network;
* before the statements it stores per neuron the entries of J_t = D_t + S_t (ψ_{t−1} du_{t−1})ᵀ and b_t
  that are not identically 0 (sympy, :func:`neuroplast.model.derive.derive`), after them ψ_t du_t;
* every input and recurrent synapse holds the eligibility vector ε (one variable per state variable) and
  steps it at the end of the step: ε_t = J_t ε_{t−1} + b_t pre_t, e_t = ψ_t du_tᵀ ε_t, ē_t = κ ē_{t−1} + e_t,
  g += L_t ē_t (and Σ e_t), with pre_t = c_in x_t or c_in z_{t−1} of the presynaptic neuron.

The model's names live in Brian2 under prefixes (state ``h_``, parameters ``p_``, temporaries ``tmp_``),
so that no model can collide with the network's own variables.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from neuroplast.gradients.traces import Trace
from neuroplast.model.derive import derive
from neuroplast.model.neurons import NeuronModel

__all__ = ["ModelCode", "model_code", "state_variable", "trace_variable"]

#: The synaptic drive c_t of this step inside the recurrent update (a temporary).
DRIVE = "c_drive"
#: c_in x_t (input neurons) or c_in z_{t−1} (recurrent neurons): what a synapse's eligibility takes in.
PRE_DRIVE = "pre_drive"


def state_variable(name: str) -> str:
    """The Brian2 variable of the model's state variable ``name``."""
    return f"h_{name}"


def _renamer(model: NeuronModel) -> dict[str, str]:
    names = {s: state_variable(s) for s in model.state}
    names.update({p: f"p_{p}" for p in model.parameter_names})
    names.update({t: f"tmp_{t}" for t in model.temporaries})
    names.update(z="z", c=DRIVE, v_th="v_th")
    return names


class _Rename(ast.NodeTransformer):
    def __init__(self, names: dict[str, str], constants: dict[str, float] | None = None) -> None:
        self.names = names
        self.constants = constants or {}

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self.constants:  # a literal: the double of the NumPy reference (repr round-trips)
            return ast.copy_location(ast.Constant(self.constants[node.id]), node)
        return ast.copy_location(ast.Name(self.names.get(node.id, node.id), node.ctx), node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        node = self.generic_visit(node)  # type: ignore[assignment]
        if isinstance(node.func, ast.Name) and node.func.id == "R":  # the reset marker is the identity
            return node.args[0]
        return node


def _render(expr: str, names: dict[str, str], constants: dict[str, float] | None = None) -> str:
    """A statement's expression with the Brian2 names, its operations as written (parenthesized)."""
    tree = _Rename(names, constants).visit(ast.parse(expr, mode="eval"))
    return ast.unparse(ast.fix_missing_locations(tree))


def trace_variable(name: str, kind: str = "pre") -> str:
    """The Brian2 variable of a rule's trace variable ``name``: ``kind`` ``"pre"`` (of every presynaptic
    neuron, ``tr_``), ``"post"`` (of every recurrent neuron, ``tp_``) or ``"synapse"`` (``ts_``)."""
    return {"pre": "tr_", "post": "tp_", "synapse": "ts_"}[kind] + name


@dataclass(frozen=True)
class _TraceCode:
    """A rule's own trace in Brian2 (:func:`_trace_code`)."""

    variables: str  # declarations of the presynaptic variables (input and recurrent groups)
    update: str  # their update after ``pre_drive``
    post_variables: str  # declarations of the postsynaptic variables (recurrent group)
    post_update: str  # their update (slot ``trace_post``: ψ_t, z_t and L_t are known)
    synapse_variables: list[str]  # declarations of the per-synapse variables
    sweep: list[str]  # the synapse variables' update, then ``e_t = …``
    signal: str  # the rule's learning signal in the sweep (``L_post`` for e-prop's)


def _trace_code(trace: Trace) -> _TraceCode:
    """A rule's own trace: its variables, their updates, e_t of a synapse and the learning signal."""
    consts = trace.constant_values
    pre = {v: trace_variable(v) for v in trace.variables}
    post = {v: trace_variable(v, "post") for v in trace.post_variables}
    syn = {v: trace_variable(v, "synapse") for v in trace.synapse_variables}
    update = "".join(f"{pre[t]} = {_render(e, {**pre, 'pre': PRE_DRIVE}, consts)}\n" for t, e in trace.update)
    in_group = {**post, "psi": "psi", "z": "z", "L": "L"}
    post_update = "".join(f"{post[t]} = {_render(e, in_group, consts)}\n" for t, e in trace.post_update)
    in_synapse = {v: f"{n}_pre" for v, n in pre.items()} | {v: f"{n}_post" for v, n in post.items()}
    in_synapse |= syn | {"psi": "psi_post", "z": "z_post", "L": "L_post"}
    sweep = [f"{syn[t]} = {_render(e, in_synapse, consts)}" for t, e in trace.synapse_update]
    sweep.append(f"e_t = {_render(trace.eligibility, in_synapse, consts)}")
    return _TraceCode(
        variables="".join(f"{n} : 1\n" for n in pre.values()),
        update=update,
        post_variables="".join(f"{n} : 1\n" for n in post.values()),
        post_update=post_update,
        synapse_variables=[f"{n} : 1" for n in syn.values()],
        sweep=sweep,
        signal=_render(trace.signal, in_synapse, consts),
    )


def _sympy_code(expr: Any, names: dict[str, str]) -> str:
    """A derived (sympy) expression with the Brian2 names (the reset's z is z)."""
    import sympy

    subs = {sympy.Symbol(k): sympy.Symbol(v) for k, v in names.items() if k != v}
    return f"({sympy.sstr(expr.xreplace(subs), full_prec=False)})"


@dataclass(frozen=True)
class ModelCode:
    """The Brian2 pieces of one neuron model.

    Attributes
    ----------
    model : NeuronModel
    group : str
        Variables of the recurrent group that are the model's: state, parameters (per neuron) and, with
        gradients, the per-neuron factors of the eligibility recursion.
    update : str
        The recurrent update (the slot ``recurrent_update``), before ψ: statements and factors.
    threshold_distance : str
        u(h_t) in Brian2 names (the surrogate's argument; z_t = [u > 0]).
    after_psi : str
        What follows ψ_t in the update: ψ_t du_t (with gradients) and the presynaptic drive.
    synapse : str
        Per-synapse variables of the eligibility (ε, ē, g, Σ e).
    sweep : str
        The per-synapse step at the end of the step (slot ``eligibility_sweep``).
    parameters : dict str -> str
        Parameter name -> its Brian2 variable.
    input_group : str
        Variables the input neurons add (a rule's trace).
    input_update : str
        Their update after the inputs' ``pre_drive`` (slot ``input_trace``).
    post_update : str
        A rule's postsynaptic trace variables' update (slot ``trace_post``, after the learning signal and
        before the sweep: ψ_t, z_t and L_t are known).
    """

    model: NeuronModel
    group: str
    update: str
    threshold_distance: str
    after_psi: str
    synapse: str
    sweep: str
    parameters: dict[str, str]
    input_group: str = ""
    input_update: str = ""
    post_update: str = ""


@lru_cache(maxsize=64)
def model_code(
    model: NeuronModel,
    gradients: bool,
    regularization: bool,
    trace: Trace | None = None,
    keep_reset: bool = False,
) -> ModelCode:
    """The Brian2 code of ``model`` (cached).

    Parameters
    ----------
    model : NeuronModel
    gradients : bool
        Include the online e-prop eligibility (per-neuron factors, per-synapse ε).
    regularization : bool
        Also accumulate Σ_t e_t per synapse (the rate regularizer's term).
    trace : Trace, optional
        A rule's own eligibility (:mod:`neuroplast.gradients.traces`) instead of e-prop's derived one:
        its variables on every presynaptic neuron (input and recurrent), updated from ``pre_drive`` each
        step, and e_t of a synapse its expression (the per-synapse ε is then not needed).
    keep_reset : bool
        The eligibility that keeps the reset term: J_t = D_t + (S_t + S_reset,t) ψ_{t−1} du_{t−1}ᵀ (a rule
        that declares :attr:`~neuroplast.plasticity.rules.Rule.keeps_reset`, ``ostl``;
        :func:`neuroplast.gradients.derived.model_eligibilities`).
    """
    if trace is not None and gradients:
        return _traced(model_code(model, False, regularization), trace, regularization)
    names = _renamer(model)
    d = derive(model)
    S = d.S + d.S_reset if keep_reset else d.S  # ∂h_t/∂z_{t−1} through ψ_{t−1} in the eligibility
    n = len(model.state)
    group = [f"{state_variable(s)} : 1" for s in model.state]
    group += [f"{names[p]} : 1" for p in model.parameter_names]
    group.append(f"{PRE_DRIVE} : 1")
    update = [f"{DRIVE} = c_in * (I_in + I_rec)"]
    sweep: list[str] = []
    after = []
    if gradients:
        for i in range(n):
            for k in range(n):
                if d.D[i, k] == 0 and S[i] == 0:
                    continue  # J[i, k] ≡ 0
                group.append(f"J_{i}_{k} : 1")
                term = _sympy_code(d.D[i, k], names)
                if S[i] != 0 and d.du[k] != 0:
                    term += f" + {_sympy_code(S[i], names)} * pdu_{k}"
                update.append(f"J_{i}_{k} = {term}")
            if d.b[i] != 0:
                group.append(f"bc_{i} : 1")
                update.append(f"bc_{i} = {_sympy_code(d.b[i], names)}")
        group += [f"pdu_{k} : 1" for k in range(n) if d.du[k] != 0]
        after += [f"pdu_{k} = psi * {_sympy_code(d.du[k], names)}" for k in range(n) if d.du[k] != 0]
        for i in range(n):
            terms = [f"J_{i}_{k}_post * eps_{k}" for k in range(n) if not (d.D[i, k] == 0 and S[i] == 0)]
            if d.b[i] != 0:
                terms.append(f"bc_{i}_post * {PRE_DRIVE}_pre")
            sweep.append(f"eps_new_{i} = " + (" + ".join(terms) if terms else "0.0"))
        sweep += [f"eps_{i} = eps_new_{i}" for i in range(n)]
        e = " + ".join(f"pdu_{k}_post * eps_{k}" for k in range(n) if d.du[k] != 0)
        sweep.append(f"e_t = {e}")
        if regularization:
            sweep.append("esum += e_t")
        sweep += ["ebar = kappa_post * ebar + e_t", "g += L_post * ebar"]
    for target, expr in model.step:
        update.append(f"{names[target]} = {_render(expr, names)}")
    after.append(f"{PRE_DRIVE} = c_in * z")  # z_{t−1}: the recurrent synapses' drive of this step
    synapse = [f"eps_{i} : 1" for i in range(n)] + ["ebar : 1", "g : 1"]
    if regularization:
        synapse.append("esum : 1")
    return ModelCode(
        model=model,
        group="\n".join(group) + "\n",
        update="\n".join(update) + "\n",
        threshold_distance=f"({_render(model.threshold, names)})",
        after_psi="\n".join(after) + "\n",
        synapse="\n".join(synapse) if gradients else "",
        sweep="\n".join(sweep) + "\n" if gradients else "",
        parameters={p: names[p] for p in model.parameter_names},
    )


def _traced(base: ModelCode, trace: Trace, regularization: bool) -> ModelCode:
    """``base`` (the model without e-prop's eligibility) with a rule's own trace and the gradient sweep."""
    tc = _trace_code(trace)
    sweep = tc.sweep + (["esum += e_t"] if regularization else [])
    sweep += ["ebar = kappa_post * ebar + e_t", f"g += {tc.signal} * ebar"]
    synapse = tc.synapse_variables + ["ebar : 1", "g : 1"] + (["esum : 1"] if regularization else [])
    return ModelCode(
        model=base.model,
        group=base.group + tc.variables + tc.post_variables,
        update=base.update,
        threshold_distance=base.threshold_distance,
        after_psi=base.after_psi + tc.update,  # after pre_drive = c_in z_{t−1}
        synapse="\n".join(synapse),
        sweep="\n".join(sweep) + "\n",
        parameters=base.parameters,
        input_group=tc.variables,
        input_update=tc.update,
        post_update=tc.post_update,
    )
