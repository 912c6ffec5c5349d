"""Parameters of the discrete-time model of docs/model.md, as the equations use them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ModelParams", "WEIGHT_ATTRS", "Weights"]


@dataclass(frozen=True)
class ModelParams:
    """Every number that enters the equations of docs/model.md.

    Attributes
    ----------
    dt : float
        Time step (ms).
    alpha : float
        Membrane decay per step, exp(−dt/τ_m) (dimensionless).
    rho : ndarray, shape (N,)
        Adaptation decay per step and neuron, exp(−dt/τ_a).
    beta : ndarray, shape (N,)
        Adaptation strength per neuron (0 → LIF), in units of v per unit of a.
    v_th : float
        Base threshold (units of v).
    n_ref : int
        Refractory period in steps (z held at 0 for n_ref steps after a spike).
    gamma : float
        Pseudo-derivative dampening factor γ (dimensionless).
    kappa : float
        Readout decay per step, exp(−dt/τ_out).
    input_scale : float
        c_in, multiplies the synaptic current W_in x_t + W_rec z_{t−1} (the e-prop
        tutorials use 1 − α).
    readout_scale : float
        c_out, multiplies W_out z_t in the readout (the tutorials use 1 − κ).
    surrogate : str
        Name of the pseudo-derivative shape (see :mod:`neuroplast.model.surrogates`).
    """

    dt: float
    alpha: float
    rho: np.ndarray
    beta: np.ndarray
    v_th: float
    n_ref: int
    gamma: float
    kappa: float
    input_scale: float = 1.0
    readout_scale: float = 1.0
    surrogate: str = "piecewise_linear"

    def __post_init__(self) -> None:
        object.__setattr__(self, "rho", np.asarray(self.rho, dtype=float).copy())
        object.__setattr__(self, "beta", np.asarray(self.beta, dtype=float).copy())
        self.rho.setflags(write=False)
        self.beta.setflags(write=False)
        if self.rho.shape != self.beta.shape or self.rho.ndim != 1:
            raise ValueError("rho and beta must be 1-D arrays of the same length (one per neuron)")

    @property
    def n_rec(self) -> int:
        """Number of recurrent neurons N."""
        return int(self.rho.shape[0])

    @classmethod
    def from_time_constants(
        cls,
        *,
        n_rec: int,
        dt: float = 1.0,
        tau_m: float = 20.0,
        tau_a: float | np.ndarray = 2000.0,
        beta: float | np.ndarray = 0.0,
        v_th: float = 0.6,
        n_ref: int = 0,
        gamma: float = 0.3,
        tau_out: float = 20.0,
        input_scale: float = 1.0,
        readout_scale: float = 1.0,
        surrogate: str = "piecewise_linear",
    ) -> ModelParams:
        """Build parameters from time constants in ms (α = exp(−dt/τ_m), ...)."""
        tau_a_arr = np.broadcast_to(np.asarray(tau_a, dtype=float), (n_rec,))
        beta_arr = np.broadcast_to(np.asarray(beta, dtype=float), (n_rec,))
        return cls(
            dt=float(dt),
            alpha=float(np.exp(-dt / tau_m)),
            rho=np.exp(-dt / tau_a_arr),
            beta=beta_arr,
            v_th=float(v_th),
            n_ref=int(n_ref),
            gamma=float(gamma),
            kappa=float(np.exp(-dt / tau_out)),
            input_scale=float(input_scale),
            readout_scale=float(readout_scale),
            surrogate=surrogate,
        )


#: The :class:`Weights` attribute that holds each trainable projection's dense weights (the one owner of
#: this naming: edge-vector weights and the network's launch values read it).
WEIGHT_ATTRS = {"input": "w_in", "recurrent": "w_rec", "output": "w_out", "bias": "b_out"}


@dataclass
class Weights:
    """Dense weight matrices (post × pre); absent synapses are exact zeros.

    :class:`~neuroplast.model.connectivity.EdgeWeights` reads the same but holds edge vectors, each dense
    matrix made only when read (the trainer's weights where its optimizer steps on edge vectors).

    Attributes
    ----------
    w_in : ndarray, shape (N, n_in)
    w_rec : ndarray, shape (N, N), zero diagonal (no autapses)
    w_out : ndarray, shape (n_out, N)
    b_out : ndarray, shape (n_out,)
    mask_in, mask_rec, mask_out : bool ndarrays of the same shapes
        Which synapses exist (sparse connectivity); updates never leave the mask.
    """

    w_in: np.ndarray
    w_rec: np.ndarray
    w_out: np.ndarray
    b_out: np.ndarray
    mask_in: np.ndarray = field(default=None)  # type: ignore[assignment]
    mask_rec: np.ndarray = field(default=None)  # type: ignore[assignment]
    mask_out: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.w_in = np.asarray(self.w_in, dtype=float)
        self.w_rec = np.asarray(self.w_rec, dtype=float)
        self.w_out = np.asarray(self.w_out, dtype=float)
        self.b_out = np.asarray(self.b_out, dtype=float)
        n = self.w_rec.shape[0]
        if self.w_rec.shape != (n, n) or self.w_in.shape[0] != n or self.w_out.shape[1] != n:
            raise ValueError("inconsistent weight shapes: need w_in (N,n_in), w_rec (N,N), w_out (n_out,N)")
        if self.b_out.shape != (self.w_out.shape[0],):
            raise ValueError("b_out must have shape (n_out,)")
        if self.mask_in is None:
            self.mask_in = np.ones(self.w_in.shape, dtype=bool)
        if self.mask_rec is None:
            self.mask_rec = np.ones((n, n), dtype=bool)
        if self.mask_out is None:
            self.mask_out = np.ones(self.w_out.shape, dtype=bool)
        self.mask_rec = np.array(self.mask_rec, dtype=bool)  # a copy of its own, without autapses
        np.fill_diagonal(self.mask_rec, False)
        self.w_in = np.where(self.mask_in, self.w_in, 0.0)
        self.w_rec = np.where(self.mask_rec, self.w_rec, 0.0)
        self.w_out = np.where(self.mask_out, self.w_out, 0.0)

    @classmethod
    def owning(
        cls,
        w_in: np.ndarray,
        w_rec: np.ndarray,
        w_out: np.ndarray,
        b_out: np.ndarray,
        masks: Weights,
        *,
        zero_off_masks: bool = True,
    ) -> Weights:
        """``Weights(w_in, w_rec, w_out, b_out, masks.mask_in, masks.mask_rec, masks.mask_out)`` bit for
        bit, made of the given float64 arrays themselves — the caller gives them up: the entries off the
        masks are set to 0 in place — and sharing ``masks``' masks (never changed in place).

        The constructor copies every matrix and mask (a fresh N × N array per update: ≈ 1/10 of Python's
        time per iteration at N = 3,000); :func:`~neuroplast.plasticity.optim.apply_updates` makes new
        weights of sums it owns.

        ``zero_off_masks=False``: the caller guarantees that they are 0 there already (copies of masked
        weights that received values on their edges only); nothing is set then.

        Raises
        ------
        ValueError
            If an array is not float64 or its shape is not that of ``masks``' weights.
        """
        new = cls.__new__(cls)
        for name, a, mask in (
            ("w_in", w_in, masks.mask_in),
            ("w_rec", w_rec, masks.mask_rec),
            ("w_out", w_out, masks.mask_out),
        ):
            if a.dtype != np.float64 or a.shape != mask.shape:
                raise ValueError(f"{name}: {a.dtype} {a.shape}, expected float64 {mask.shape}")
            if zero_off_masks:
                np.putmask(a, ~mask, 0.0)  # np.where(mask, a, 0.0), in place
            setattr(new, name, a)
        if b_out.dtype != np.float64 or b_out.shape != masks.b_out.shape:
            raise ValueError(f"b_out: {b_out.dtype} {b_out.shape}, expected float64 {masks.b_out.shape}")
        new.b_out = b_out
        new.mask_in, new.mask_rec, new.mask_out = masks.mask_in, masks.mask_rec, masks.mask_out
        return new

    @property
    def n_in(self) -> int:
        return int(self.w_in.shape[1])

    @property
    def n_rec(self) -> int:
        return int(self.w_rec.shape[0])

    @property
    def n_out(self) -> int:
        return int(self.w_out.shape[0])

    def copy(self) -> Weights:
        return Weights(
            self.w_in.copy(),
            self.w_rec.copy(),
            self.w_out.copy(),
            self.b_out.copy(),
            self.mask_in.copy(),
            self.mask_rec.copy(),
            self.mask_out.copy(),
        )
