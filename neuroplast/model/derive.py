"""What a :class:`~neuroplast.model.neurons.NeuronModel` implies, derived symbolically (sympy).

From the statements of one neuron, h_t = f(h_{t−1}, z_{t−1}, c_t), and its threshold argument u(h_t),
:func:`derive` computes (docs/model.md §10):

* ``D`` = ∂f/∂h_{t−1} (n × n): the neuron's own state, with z_{t−1} held fixed;
* ``S`` = ∂f/∂z_{t−1} (n) outside the reset term, and ``S_reset`` = its reset part;
* ``b`` = ∂f/∂c_t (n): how the synaptic drive enters;
* ``du`` = ∂u/∂h_t (n).

The e-prop eligibility of a synapse with presynaptic drive pre_t is then, with ψ_t the pseudo-derivative,

    ε_t = J_t ε_{t−1} + b_t pre_t,   J_t = D_t + S_t (ψ_{t−1} du_{t−1})ᵀ,   e_t = ψ_t du_tᵀ ε_t

(the spike z_{t−1} enters the own state through ψ_{t−1}, except in the reset), and exact BPTT's backward
step, with dh_t = dE/dh_t and the adjoint of the drive g_t = b_tᵀ dh_t,

    dz_t = direct_t + c_in W_recᵀ g_{t+1} + S_{t+1}ᵀ dh_{t+1} [+ S_reset,t+1ᵀ dh_{t+1} with the reset]
    dh_t = du_t ψ_t dz_t + D_{t+1}ᵀ dh_{t+1}

Each derivative is a sympy expression of the old state, z, c, v_th and the parameters, turned into a NumPy
function (:meth:`Derived.evaluate`).  sympy is imported here only (it comes with Brian2's dependencies).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from neuroplast.model.neurons import NeuronModel

__all__ = ["Derived", "derive", "describe"]

#: The symbol of z_{t−1} inside R(…): held fixed when differentiating through the spike (detached reset).
_Z_RESET = "z_reset__"


@dataclass(frozen=True, eq=False)
class Derived:
    """The derivatives of one neuron model (sympy expressions and their NumPy functions).

    Attributes
    ----------
    model : NeuronModel
    new : dict str -> sympy.Expr
        h_t of each state variable in terms of the old state, ``z``, ``c``, ``v_th`` and the parameters
        (the reset's z as its own symbol).
    u : sympy.Expr
        u(h) in terms of the state.
    D : sympy.Matrix (n, n)
        D[i, k] = ∂h_t[i]/∂h_{t−1}[k].
    S, S_reset, b : sympy.Matrix (n, 1)
        ∂h_t/∂z_{t−1} outside and inside the reset term; ∂h_t/∂c_t.
    du : sympy.Matrix (n, 1)
        ∂u/∂h.
    """

    model: NeuronModel
    new: dict[str, Any]
    u: Any
    D: Any
    S: Any
    S_reset: Any
    b: Any
    du: Any
    _functions: dict[str, Any]

    @property
    def n(self) -> int:
        """Number of state variables."""
        return len(self.model.state)

    def evaluate(self, which: str, values: Mapping[str, Any], n_rec: int | tuple[int, ...]) -> np.ndarray:
        """A derivative's value for N neurons (or for every step and neuron at once).

        Parameters
        ----------
        which : {"D", "S", "S_reset", "b", "du"}
        values : mapping
            Every name the derivative may use: the state variables (for ``du``: the new state; else the
            old one), ``z``, ``c``, ``v_th`` and the parameters (scalars, or arrays that broadcast to
            ``n_rec``: (N,) per neuron, (T, N) per step and neuron).
        n_rec : int or tuple of int
            N, or the trailing shape of the result, e.g. (T, N) for every step of a trial (the entries
            are elementwise, so each step's values are the same doubles as one step evaluated alone).

        Returns
        -------
        ndarray
            ``D``: (n, n, *n_rec); the others (n, *n_rec).
        """
        fn, shape = self._functions[which]
        args = [values[name] for name in fn.args]
        out = np.empty((*shape, *np.atleast_1d(n_rec).tolist()))
        for idx, f in fn.entries:
            out[idx] = f(*args)
        return out


@dataclass(frozen=True)
class _Lambdified:
    args: tuple[str, ...]
    entries: tuple[tuple[tuple[int, ...], Any], ...]


def _lambdify(matrix: Any, args: tuple[str, ...]) -> tuple[_Lambdified, tuple[int, ...]]:
    import sympy

    symbols = [sympy.Symbol(a) for a in args]
    shape = (matrix.shape[0],) if matrix.shape[1] == 1 else tuple(matrix.shape)
    entries = []
    for idx in np.ndindex(*shape):
        expr = matrix[idx] if len(idx) == 2 else matrix[idx[0], 0]
        entries.append((idx, sympy.lambdify(symbols, expr, modules="numpy")))
    return _Lambdified(args, tuple(entries)), shape


def _namespace(model: NeuronModel) -> dict[str, Any]:
    import sympy

    ns: dict[str, Any] = {name: sympy.Symbol(name) for name in (*model.state, *model.parameter_names)}
    ns.update(z=sympy.Symbol("z"), c=sympy.Symbol("c"), v_th=sympy.Symbol("v_th"))
    ns.update(exp=sympy.exp, log=sympy.log, sqrt=sympy.sqrt, tanh=sympy.tanh, sin=sympy.sin, cos=sympy.cos)
    return ns


def _sympify(expr: str, env: Mapping[str, Any], where: str) -> Any:
    import sympy

    reset = sympy.Symbol(_Z_RESET)
    env = dict(env)
    env["R"] = lambda term: sympy.sympify(term).subs(sympy.Symbol("z"), reset)
    try:
        return eval(compile(expr, where, "eval"), {"__builtins__": {}}, env)  # names checked by NeuronModel
    except (TypeError, ValueError, ZeroDivisionError, sympy.SympifyError) as exc:
        raise ValueError(f"{where}: {exc}") from None


@lru_cache(maxsize=64)
def derive(model: NeuronModel) -> Derived:
    """The derivatives of ``model`` (cached per model).

    Raises
    ------
    ValueError
        One line naming the model: an expression sympy cannot differentiate, or a state variable whose
        update does not depend on c and has no path from another that does (the drive never reaches u).
    """
    import sympy

    ns = _namespace(model)
    env = dict(ns)
    for k, (target, expr) in enumerate(model.step):
        env[target] = _sympify(expr, env, f"neuron model {model.name!r}, statement {k + 1}")
    new = {s: sympy.sympify(env[s]) for s in model.state}
    old = [ns[s] for s in model.state]
    z, c, zr = ns["z"], ns["c"], sympy.Symbol(_Z_RESET)
    f = sympy.Matrix([new[s] for s in model.state])
    D = f.jacobian(old)
    S = f.diff(z)
    S_reset = f.diff(zr)
    b = f.diff(c)
    u = sympy.sympify(_sympify(model.threshold, ns, f"neuron model {model.name!r}, threshold"))
    du = sympy.Matrix([u.diff(ns[s]) for s in model.state])
    if all(e == 0 for e in du):
        raise ValueError(f"neuron model {model.name!r}: the threshold does not depend on the state")
    if all(e == 0 for e in b):
        raise ValueError(f"neuron model {model.name!r}: no state variable depends on the synaptic drive c")
    # one symbol for z in every NumPy function (the reset's z is z)
    D, S, S_reset, b = (m.subs(zr, z) for m in (D, S, S_reset, b))
    args = (*model.state, "z", "c", "v_th", *model.parameter_names)
    functions = {name: _lambdify(m, args) for name, m in (("D", D), ("S", S), ("S_reset", S_reset), ("b", b))}
    functions["du"] = _lambdify(du, (*model.state, "v_th", *model.parameter_names))
    return Derived(model, new, u, D, S, S_reset, b, du, functions)


def describe(model: NeuronModel) -> str:
    """``neuroplast model show``: the model's statements, parameters and derived eligibility recursion."""
    import sympy

    d = derive(model)
    h = list(model.state)
    lines = [f"{model.name}: {model.summary}", "", "step (in order; R(…) marks the reset term):"]
    lines += [f"  {t} ← {e}" for t, e in model.step]
    lines += [f"  u = {model.threshold}", "  z = H(u) · (1 − r̂),  ψ = (γ / v_th) · s(u / v_th) · (1 − r̂)", ""]
    if model.parameters:
        lines.append("parameters:")
        for p in model.parameters:
            src = f"exp(−dt / network.{p.key})" if p.decay else f"network.{p.key}"
            each = ", per neuron" if p.per_neuron else ""
            lines.append(f"  {p.name} = {src} (default {p.key} = {p.default:g}{each}): {p.doc}")
        lines.append("")
    lines.append("derived (sympy):")
    for s in h:
        lines.append(f"  {s}_t = {sympy.sstr(d.new[s]).replace(_Z_RESET, 'z')}")
    lines.append(f"  b = ∂h_t/∂c_t = {_vec(d.b, h)}")
    lines.append(f"  du = ∂u/∂h = {_vec(d.du, h)}")
    lines.append(
        f"  S = ∂h_t/∂z_(t-1) outside the reset = {_vec(d.S, h)};  in the reset = {_vec(d.S_reset, h)}"
    )
    lines.append("")
    lines.append(
        "e-prop eligibility of a synapse (pre_t: c_in x_t or c_in z_(t-1) of the presynaptic neuron):"
    )
    J = d.D + d.S * sympy.Symbol("psi_prev") * d.du.T
    for i, s in enumerate(h):
        terms = [
            f"({sympy.sstr(sympy.factor_terms(J[i, k]))}) eps_{h[k]}" for k in range(len(h)) if J[i, k] != 0
        ]
        if d.b[i] != 0:
            terms.append(f"({sympy.sstr(d.b[i])}) pre_t" if d.b[i] != 1 else "pre_t")
        lines.append(f"  eps_{s}_t = " + (" + ".join(terms) if terms else "0"))
    e_terms = [f"({sympy.sstr(d.du[k])}) eps_{h[k]}_t" for k in range(len(h)) if d.du[k] != 0]
    lines.append("  e_t = psi_t * [" + " + ".join(e_terms) + "]")
    lines.append("  (J's entries use the old state and psi_prev = ψ_(t-1), du_(t-1) at the old state)")
    lines.append("")
    lines.append("exact BPTT, backward (dh_t = dE/dh_t, g_t = bᵀ dh_t the drive's adjoint):")
    lines.append(
        "  dz_t = direct_t + c_in W_recᵀ g_(t+1) + Sᵀ dh_(t+1)  [+ S_resetᵀ dh_(t+1) with the reset kept]"
    )
    lines.append("  dh_t = du ψ_t dz_t + Dᵀ dh_(t+1)")
    lines.append("  dE/dW_in = c_in Σ_t g_t x_tᵀ,   dE/dW_rec = c_in Σ_t g_t z_(t-1)ᵀ")
    lines.append(f"  D = ∂h_t/∂h_(t-1) = {sympy.sstr(d.D.tolist())}  (rows and columns: {', '.join(h)})")
    return "\n".join(lines)


def _vec(m: Any, names: list[str]) -> str:
    import sympy

    return "(" + ", ".join(f"{n}: {sympy.sstr(m[i])}" for i, n in enumerate(names)) + ")"
