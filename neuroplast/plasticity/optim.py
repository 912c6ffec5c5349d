"""Optimizers (SGD, Adam; registered by name) and the one way every training mode applies an update.

An optimizer turns gradients ``{projection: dense array}`` into updates of the same shapes; its state
(moments, step count) is what ``--resume`` stores.  :func:`apply_updates` masks the updates by the
connectivity, lets the rule change them and move its feedback state, and applies them to the weights.
"""

from __future__ import annotations

from typing import Any, Protocol, Self

import numpy as np

from neuroplast.model.connectivity import PROJECTIONS, Connectivity, EdgeWeights
from neuroplast.model.params import Weights
from neuroplast.registry import Registry

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "NestAdam",
    "averaged",
    "averaging_steps",
    "OPTIMIZERS",
    "make_optimizer",
    "trainable",
    "apply_updates",
]


class Optimizer(Protocol):
    """What the trainer needs of an optimizer."""

    lr: float

    def step(self, grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def state(self) -> dict[str, Any]: ...

    def load_state(self, state: dict[str, Any]) -> None: ...


class SGD:
    """Plain gradient descent: Δθ = −η g.

    Parameters
    ----------
    lr : float
        Learning rate η ([weight] per unit gradient).
    """

    def __init__(self, lr: float) -> None:
        self.lr = float(lr)

    @classmethod
    def from_config(cls, training: Any) -> SGD:
        """From a ``[training]`` table (``learning_rate``)."""
        return cls(training.learning_rate)

    def step(self, grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: -self.lr * g for k, g in grads.items()}

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass


class _Moments:
    """What :class:`Adam` and :class:`NestAdam` share: their constants, the step count, the first and
    second moments per parameter group and the moment update; they differ only in the step they take.

    Parameters
    ----------
    lr : float
        Learning rate η.
    b1, b2 : float
        Decay rates β₁, β₂ of the first and second moment, in [0, 1).
    eps : float
        ε of the denominator (where it is added is the subclass's).
    """

    def __init__(self, lr: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> None:
        self.lr = float(lr)
        self.b1, self.b2, self.eps = float(b1), float(b2), float(eps)
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}
        self.t = 0

    @classmethod
    def from_config(cls, training: Any) -> Self:
        """From a ``[training]`` table (``learning_rate``, ``adam_beta1``, ``adam_beta2``, ``adam_eps``)."""
        return cls(training.learning_rate, training.adam_beta1, training.adam_beta2, training.adam_eps)

    def _moments(self, k: str, g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """m ← β₁ m + (1 − β₁) g and v ← β₂ v + (1 − β₂) g² of group ``k`` (zeros before its first
        gradient), stored and returned, with a scratch array of g's shape and type for the step.

        The operations are those of ``b1 * m + (1 - b1) * g`` and ``b2 * v + (1 - b2) * g * g``, in that
        order (the same values bit for bit), written into arrays of their own instead of a new temporary
        each: a step over 10⁶–10⁷ weights is bound by allocating and touching those temporaries.  The
        previous m and v are never written (the run log may still hold them: ``Trainer.state``).
        """
        m = np.multiply(self.b1, self.m[k] if k in self.m else np.zeros_like(g))
        scratch = np.multiply(1 - self.b1, g)
        np.add(m, scratch, out=m)
        v = np.multiply(self.b2, self.v[k] if k in self.v else np.zeros_like(g))
        np.multiply(1 - self.b2, g, out=scratch)
        np.multiply(scratch, g, out=scratch)
        np.add(v, scratch, out=v)
        self.m[k], self.v[k] = m, v
        return m, v, scratch

    def state(self) -> dict[str, Any]:
        return {"t": self.t, "m": dict(self.m), "v": dict(self.v)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.t = int(state["t"])
        self.m = dict(state.get("m", {}))
        self.v = dict(state.get("v", {}))


class Adam(_Moments):
    """Adam (Kingma & Ba 2015) with bias correction, per parameter group.

    Parameters
    ----------
    lr : float
        Learning rate η.
    b1, b2 : float
        Decay rates of the first and second moment, in [0, 1).
    eps : float
        ε added to √v̂ in the denominator.
    """

    def step(self, grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.t += 1
        out = {}
        for k, g in grads.items():
            m, v, den = self._moments(k, g)
            # -lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps), operation by operation
            np.divide(v, 1 - self.b2**self.t, out=den)
            np.sqrt(den, out=den)
            np.add(den, self.eps, out=den)
            step = np.divide(m, 1 - self.b1**self.t)
            np.multiply(-self.lr, step, out=step)
            out[k] = np.divide(step, den, out=step)
        return out


class NestAdam(_Moments):
    """NEST 3.10's Adam (``weight_optimizer.h``, TensorFlow's form of ε).

    At update n (n = 1, 2, … for every parameter)::

        m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²
        Δθ = −η √(1 − β₂ⁿ) / (1 − β₁ⁿ) · m / (√v + ε)

    i.e. ε is added to √v, not to the bias-corrected √v̂ as in :class:`Adam`.  NEST keeps the step count
    per synapse and updates a synapse at its next presynaptic spike, catching up on the updates it
    missed with zero gradient; its count therefore equals the number of updates, and a parameter with a
    zero gradient still moves with its first moment — measured on NEST's classification example, whose
    first five losses this reproduces (docs/validation.md).

    Parameters
    ----------
    lr : float
        Learning rate η.
    b1, b2 : float
        β₁, β₂ in [0, 1).
    eps : float
        ε (NEST's default is 1e-7; its classification example uses 1e-8).
    """

    def step(self, grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.t += 1
        alpha = self.lr * np.sqrt(1 - self.b2**self.t) / (1 - self.b1**self.t)
        out = {}
        for k, g in grads.items():
            m, v, den = self._moments(k, g)
            # -alpha * m / (sqrt(v) + eps), operation by operation
            np.add(np.sqrt(v, out=den), self.eps, out=den)
            step = np.multiply(-alpha, m)
            out[k] = np.divide(step, den, out=step)
        return out


def averaging_steps(mask: np.ndarray) -> float:
    """n of :func:`averaged`: the number of steps the loss counts (the nonzero entries of the trial's
    recall-window mask), a float."""
    return float(np.count_nonzero(np.asarray(mask)))


def averaged(grads: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    """``grads`` divided by the number of steps the loss counts (``training.average_gradient``, NEST's
    ``average_gradient``: the gradient per step of the learning window)."""
    n = averaging_steps(mask)
    return {k: g / n for k, g in grads.items()}


def _check_optimizer(obj: object, name: str) -> None:
    for attr in ("from_config", "step", "state", "load_state"):
        if not callable(getattr(obj, attr, None)):
            raise TypeError(f"{obj!r} is not an optimizer class (it has no {attr}())")


#: Optimizer classes by name; each has ``from_config(training)``.  Third parties add theirs through the
#: ``neuroplast.optimizers`` entry points.
OPTIMIZERS: Registry[type] = Registry("optimizer", check=_check_optimizer)
OPTIMIZERS.register("sgd", SGD)
OPTIMIZERS.register("adam", Adam)
OPTIMIZERS.register("adam-nest", NestAdam)


def make_optimizer(name: str, training: Any) -> Optimizer:
    """The optimizer registered as ``name``, configured from a ``[training]`` table."""
    return OPTIMIZERS.get(name).from_config(training)


def trainable(
    grads: dict[str, np.ndarray], train_output: bool, bias: bool = True, recurrent: bool = True
) -> dict[str, np.ndarray]:
    """``grads`` with the readout's (output and bias) zeroed unless ``train_output``, the bias's zeroed
    unless ``bias`` (``network.readout_bias``: a readout without bias keeps b = 0), and W_rec's zeroed
    unless ``recurrent`` (``training.train_recurrent``: W_rec keeps its initial values)."""
    out = dict(grads)
    if not recurrent:
        out["recurrent"] = np.zeros_like(grads["recurrent"])
    if not train_output:
        out["output"] = np.zeros_like(grads["output"])
    if not (train_output and bias):
        out["bias"] = np.zeros_like(grads["bias"])
    return out


def apply_updates(
    rule: Any, weights: Weights, feedback: np.ndarray, updates: dict[str, np.ndarray]
) -> tuple[Weights, np.ndarray, dict[str, np.ndarray]]:
    """Apply an optimizer's updates the way every training mode does.

    The updates are masked by the connectivity, changed by ``rule.adjust_updates``, the rule's B
    state follows (``rule.after_update``), and the weights receive them.

    Parameters
    ----------
    rule : Rule
    weights : Weights
        Weights before the update.
    feedback : ndarray (N, n_out)
        The rule's B state before the update.
    updates : dict
        ``input``, ``recurrent``, ``output``, ``bias`` changes from the optimizer (dense).

    Returns
    -------
    weights : Weights       after the update
    feedback : ndarray      the rule's B state after the update
    updates : dict          the changes actually applied (``w_after − w_before`` up to rounding)
    """
    masks = {
        "input": weights.mask_in,
        "recurrent": weights.mask_rec,
        "output": weights.mask_out,
        "bias": np.ones_like(weights.b_out, dtype=bool),
    }
    updates = {k: np.where(masks[k], u, 0.0) for k, u in updates.items()}
    updates = rule.adjust_updates(updates, weights)
    feedback = rule.after_update(feedback, weights, updates)
    new = Weights.owning(  # new sums: no copy of them
        np.add(weights.w_in, updates["input"], dtype=float),
        np.add(weights.w_rec, updates["recurrent"], dtype=float),
        np.add(weights.w_out, updates["output"], dtype=float),
        np.add(weights.b_out, updates["bias"], dtype=float),
        weights,
    )
    return new, feedback, updates


#: The dense weight matrix of each projection of :class:`Weights`.
def apply_edge_updates(
    rule: Any,
    weights: Weights,
    feedback: np.ndarray,
    updates: dict[str, np.ndarray],
    connectivity: Connectivity,
    weight_edges: dict[str, np.ndarray],
) -> tuple[EdgeWeights, np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """:func:`apply_updates` for updates given as edge vectors (an optimizer stepping on edge vectors):
    the same weights, B and applied updates bit for bit, as :class:`EdgeWeights` — no N × N array at all.

    Every edge is on the connectivity, so the mask changes nothing; the rule's :meth:`adjust_updates` and
    :meth:`after_update` see dense arrays — bit for bit those :func:`apply_updates` gives them — of the
    projections it declares (:attr:`~neuroplast.plasticity.rules.Rule.dense_updates`; none when it
    overrides neither).  The new weights' edges hold ``w + Δw``, the very sum of the dense path, whose
    entries off the edges stay 0: their dense matrices (made only if read) are those of :func:`apply_updates`.

    Parameters
    ----------
    rule : Rule
    weights : Weights
        Weights before the update (dense or :class:`EdgeWeights`).
    feedback : ndarray (N, n_out)
        The rule's B state before the update.
    updates : dict
        ``input``, ``recurrent``, ``output``, ``bias`` changes from the optimizer, edge vectors in
        ``connectivity``'s order.
    connectivity : Connectivity
        The edge layout of ``weights``.
    weight_edges : dict
        ``weights``' edge vectors (:meth:`Connectivity.weight_vectors`).

    Returns
    -------
    weights : EdgeWeights   after the update, of ``connectivity``
    feedback : ndarray      the rule's B state after the update
    updates : dict          the edge vectors of the changes actually applied
    weight_edges : dict     the new weights' edge vectors (``weights.edges``)
    """
    from neuroplast.plasticity.rules import Rule  # rules import this module

    plain = type(rule).adjust_updates is Rule.adjust_updates and type(rule).after_update is Rule.after_update
    updates = dict(updates)
    if not plain:
        dense = {k: connectivity.to_dense(k, updates[k]) for k in rule.dense_updates}
        adjusted = rule.adjust_updates(dense, weights)
        feedback = rule.after_update(feedback, weights, adjusted)
        updates.update({k: connectivity.to_edges(k, adjusted[k]) for k in rule.dense_updates})
    sums = {k: np.add(weight_edges[k], updates[k], dtype=float) for k in PROJECTIONS}
    new = connectivity.edge_weights(sums)
    return new, feedback, updates, new.edges
