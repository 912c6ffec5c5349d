"""Pseudo-derivatives ψ of the spike nonlinearity (surrogate gradients).

Every surrogate is a function of the scaled distance to threshold
``x = (v - A) / v_th`` (dimensionless) and returns

    ψ = (γ / v_th) · s(x)

in units of 1/v (one over the membrane-potential unit).  ψ is forced to 0 while
a neuron is refractory (see docs/model.md).  Each surrogate is written twice:
as a NumPy function and as a Brian2 expression of the *same* formula, so the
online Brian2 traces and the NumPy reference evaluate the same expression.

Surrogates register by name in :data:`SURROGATES`; third parties may call
:func:`register_surrogate`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from neuroplast.registry import Registry

__all__ = ["Surrogate", "SURROGATES", "register_surrogate", "get_surrogate"]


@dataclass(frozen=True)
class Surrogate:
    """A surrogate shape ``s(x)``.

    Attributes
    ----------
    name : str
        Registry name.
    numpy : callable
        ``s(x)`` over a NumPy array of scaled distances ``x = (v - A)/v_th``.
    brian2 : str
        The same formula as a Brian2 expression with the placeholder ``{x}``.
    compact : bool
        ``s(x) = 0`` outside a bounded interval, so ψ is exactly 0 most of the time: the Brian2 network then
        updates a synapse's eligibility only at steps where its postsynaptic ψ ≠ 0 (event-driven path).
    """

    name: str
    numpy: Callable[[np.ndarray], np.ndarray]
    brian2: str
    compact: bool = False

    def psi(self, v_minus_A: np.ndarray, v_th: float, gamma: float) -> np.ndarray:
        """ψ = γ/v_th · s((v − A)/v_th), in 1/[v]."""
        return (gamma / v_th) * self.numpy(v_minus_A / v_th)

    def brian2_psi(self, dist: str = "(v - A)") -> str:
        """Brian2 expression of ψ using the names ``gamma`` and ``v_th``."""
        x = f"({dist} / v_th)"
        return f"(gamma / v_th) * ({self.brian2.format(x=x)})"


def _check_surrogate(obj: object, name: str) -> None:
    if not isinstance(obj, Surrogate):
        raise TypeError(f"{obj!r} is not a neuroplast Surrogate")
    if obj.name.lower() != name.lower():
        raise ValueError(f"entry point name {name!r} differs from the surrogate's name {obj.name!r}")


#: Surrogates by name; third parties add theirs through the ``neuroplast.surrogates`` entry points.
SURROGATES: Registry[Surrogate] = Registry("surrogate", check=_check_surrogate)


def register_surrogate(s: Surrogate) -> Surrogate:
    """Register a surrogate under ``s.name`` (refuses duplicates)."""
    SURROGATES.register(s.name, s)
    return s


def get_surrogate(name: str) -> Surrogate:
    """Look a surrogate up by name (clear error listing the known ones)."""
    return SURROGATES.get(name)


register_surrogate(
    Surrogate(
        "piecewise_linear",
        lambda x: np.maximum(0.0, 1.0 - np.abs(x)),
        "clip(1.0 - abs({x}), 0.0, 1.0)",
        compact=True,
    )
)
register_surrogate(Surrogate("exponential", lambda x: np.exp(-np.abs(x)), "exp(-abs({x}))"))
register_surrogate(
    Surrogate("fast_sigmoid", lambda x: 1.0 / (1.0 + np.abs(x)) ** 2, "1.0 / ((1.0 + abs({x}))**2)")
)
register_surrogate(
    Surrogate("arctan", lambda x: 1.0 / (1.0 + (np.pi * x) ** 2), "1.0 / (1.0 + (pi * {x})**2)")
)
