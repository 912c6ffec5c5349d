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
    brian2_error : str
        The same error as one Brian2 statement on the readout group, run every step after y_t:
        ``err = ...`` reading ``y``, the target ``Y_target(t, i)``, the recall window ``M_mask(t, 0)``
        and, with ``softmax``, ``expsum`` = Σ_k exp(y_k).
    softmax : bool
        Whether the statement needs ``expsum`` (the network then sums exp(y) over the readout units
        just before it).
    uses_mask : bool
        Whether the statement reads the recall-window mask ``M_mask``.
    brian2_name : str
        Name of the Brian2 operation (default ``loss_<name>``).

    The network (:mod:`neuroplast.network`) builds the Brian2 objects from these strings; nothing here
    imports or creates Brian2 objects.
    """

    name: str
    value: Callable[[np.ndarray, np.ndarray, np.ndarray], float]
    error: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    brian2_error: str
    softmax: bool = False
    uses_mask: bool = False
    brian2_name: str = ""

    def __post_init__(self) -> None:
        if not self.brian2_name:
            object.__setattr__(self, "brian2_name", f"loss_{self.name}")


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


def _ce_value(y, target, mask):
    logp = y - np.log(np.exp(y).sum(axis=-1, keepdims=True))
    return float(-np.sum(mask[..., None] * target * logp))


def _ce_error(y, target, mask):
    return mask[..., None] * (softmax(y) - target)


LOSSES.register("mse", Loss("mse", _mse_value, _mse_error, "err = y - Y_target(t, i)"))
LOSSES.register(
    "cross_entropy",
    Loss(
        "cross_entropy",
        _ce_value,
        _ce_error,
        "err = M_mask(t, 0) * (exp(y) / expsum - Y_target(t, i))",
        softmax=True,
        uses_mask=True,
        brian2_name="loss_ce",
    ),
)
