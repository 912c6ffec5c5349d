"""Task losses E(y) and their errors dE/dy_t (docs/model.md §2).

* ``mse``:            E = ½ Σ_t Σ_k (y_k^t − y*_k^t)²,          err_t = y_t − y*_t
* ``cross_entropy``:  E = −Σ_t m_t Σ_k π*_k log π_k^t,  π_t = softmax(y_t),
                      err_t = m_t (π_t − π*)   (m_t: recall-window mask, π* one-hot label)

Both are written as NumPy functions and as the Brian2 statements that compute the
same error online on the readout group.  Losses register by name in :data:`LOSSES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuroplast.registry import Registry

__all__ = ["Loss", "LOSSES", "get_loss", "as_loss", "softmax"]


def softmax(y: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (plain exp, as computed online in Brian2)."""
    e = np.exp(y)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class Loss:
    """A loss: value, error dE/dy, and its Brian2 form.

    Attributes
    ----------
    name : str
    value : callable (y, target, mask) -> float
        y: (T, n_out); target: (T, n_out) (regression values or one-hot labels);
        mask: (T,) recall window (1 = counted).
    error : callable (y, target, mask) -> ndarray (T, n_out), dE/dy_t (explicit part)
    brian2_objects : callable (brian2, readout_group) -> list
        Adds the online computation of ``err`` to the readout group.
    uses_mask : bool
        Whether the Brian2 code reads the recall-window mask ``M_mask``.
    """

    name: str
    value: Callable[[np.ndarray, np.ndarray, np.ndarray], float]
    error: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    brian2_objects: Callable[[Any, Any], list]
    uses_mask: bool = False


def _check_loss(obj: object, name: str) -> None:
    if not isinstance(obj, Loss):
        raise TypeError(f"{obj!r} is not a neuroplast Loss")
    if obj.name.lower() != name.lower():
        raise ValueError(f"entry point name {name!r} differs from the loss's name {obj.name!r}")


#: Losses by name; third parties add theirs through the ``neuroplast.losses`` entry points.
LOSSES: Registry[Loss] = Registry("loss", check=_check_loss)


def get_loss(name: str) -> Loss:
    """Loss by name (``mse``, ``cross_entropy``, or a registered third-party one)."""
    return LOSSES.get(name)


def as_loss(loss: Loss | str) -> Loss:
    """``loss`` itself, or the registered loss of that name."""
    return get_loss(loss) if isinstance(loss, str) else loss


def _mse_value(y, target, mask):
    return float(0.5 * np.sum((y - target) ** 2))


def _mse_error(y, target, mask):
    return y - target


def _mse_brian2(b2, out) -> list:
    out.run_regularly("err = y - Y_target(t, i)", when="before_resets", order=2, name="loss_mse")
    return []


def _ce_value(y, target, mask):
    logp = y - np.log(np.exp(y).sum(axis=-1, keepdims=True))
    return float(-np.sum(mask[..., None] * target * logp))


def _ce_error(y, target, mask):
    return mask[..., None] * (softmax(y) - target)


def _ce_brian2(b2, out) -> list:
    norm = b2.Synapses(out, out, "expsum_post = exp(y_pre) : 1 (summed)", name="softmax_norm")
    norm.connect()
    upd = norm.summed_updaters["expsum_post"]
    upd.when = "before_resets"
    upd.order = 1
    out.run_regularly(
        "err = M_mask(t, 0) * (exp(y) / expsum - Y_target(t, i))",
        when="before_resets",
        order=2,
        name="loss_ce",
    )
    return [norm]


LOSSES.register("mse", Loss("mse", _mse_value, _mse_error, _mse_brian2))
LOSSES.register("cross_entropy", Loss("cross_entropy", _ce_value, _ce_error, _ce_brian2, uses_mask=True))
