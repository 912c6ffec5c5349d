"""What one launch of a :class:`~neuroplast.network.builder.Brian2Network` is given: weights, per-neuron
parameters, feedback, learning rates, optimizer state, inputs and targets, checked against what was
built."""

from __future__ import annotations

import numpy as np

from neuroplast.model.connectivity import EdgeWeights
from neuroplast.model.params import WEIGHT_ATTRS, ModelParams, Weights
from neuroplast.network.launch import INPUT_TABLE


class Values:
    """The values of a launch, as run arguments of the network's variables and arrays."""

    def _launch_values(self, weights: Weights, feedback: np.ndarray | None, params: ModelParams | None):
        """The parameters of a launch of :meth:`run_trial` or :meth:`run_batch` (checked) and its
        variable values: weights, per-neuron parameters, the bias and (with ``gradients``) B."""
        self._check_usable()
        p = params or self.params
        self._check_fixed(p)
        values = self._weight_values(weights, p)
        if self.gradients or self.factorized:
            self._feedback_values(values, weights.w_out.T if feedback is None else feedback)
        if self.factorized:
            rec = self.groups["recurrent"]
            values[rec.reg_c] = np.asarray(self.reg[0])
            values[rec.reg_T] = np.asarray(float(self.n_steps))
            values[rec.reg_f] = np.asarray(self.reg[1])
        return p, values

    def _feedback_values(self, values: dict, feedback: np.ndarray) -> None:
        """B of every readout synapse (every copy)."""
        src, tgt = self.edges["output"]
        fb = np.ascontiguousarray(np.asarray(feedback, float)[src, tgt], dtype=float)
        values[self.synapses["output"].B] = np.tile(fb, self.batch)

    def _check_input(self, x: np.ndarray) -> np.ndarray:
        T = self.n_steps
        x = np.asarray(x, dtype=float)
        if x.shape != (T, self.n_in):
            raise ValueError(f"x must have shape ({T}, {self.n_in}), got {x.shape}")
        if not np.all((x == 0.0) | (x == 1.0)):
            raise ValueError("Brian2 inputs are spikes: x must contain only 0 and 1")
        return x

    def _in_b2_order(self, key: str, dense: np.ndarray) -> np.ndarray:
        """``dense[target, source]`` of projection ``key``'s synapses in Brian2's order (float64): a ``take``
        of row-major flat indices, made once per network (a few times faster than fancy indexing
        in two dimensions, over every weight at every launch)."""
        flat = self._b2_flat.get(key)
        if flat is None:
            src, tgt = self._b2_edges[key]
            flat = self._b2_flat[key] = np.asarray(tgt, np.intp) * dense.shape[1] + np.asarray(src, np.intp)
        return np.asarray(dense, dtype=float).take(flat)  # flat indices of the row-major order, any layout

    def _weights_in_b2_order(self, weights: Weights, key: str) -> np.ndarray:
        """Projection ``key``'s weights in Brian2's synapse order (float64): the edge vector of
        :class:`EdgeWeights` of this network's connectivity taken in that order (``dense[target, source]``
        bit for bit, no dense matrix read), else :meth:`_in_b2_order` of the dense matrix."""
        if isinstance(weights, EdgeWeights) and weights.connectivity.edges[key] is self.edges[key]:
            return self._log_to_b2(key, weights.edges[key])
        return self._in_b2_order(key, getattr(weights, WEIGHT_ATTRS[key]))

    def _log_to_b2(self, key: str, vec: np.ndarray) -> np.ndarray:
        """An edge vector of projection ``key`` in the log's order, in Brian2's synapse order: ``vec`` itself
        where Brian2 keeps the log's order (a launch only writes its values to a file), else a new array."""
        return vec if key in self._in_log_order else vec.take(self._from_log[key])

    def _weight_values(self, weights: Weights, p: ModelParams) -> dict:
        """Brian2 variable -> value: weights in Brian2's synapse order, per-neuron parameters, the bias."""
        values = {}
        B = self.batch  # every copy: the same values
        for key, syn in self.synapses.items():
            w = self._weights_in_b2_order(weights, key)  # only written to the launch: never changed
            values[syn.w] = w if B == 1 else np.tile(w, B)
        rec, out = self.groups["recurrent"], self.groups["readout"]
        if self.model_code is None:
            values[rec.rho] = np.tile(np.asarray(p.rho, float), B)
            values[rec.beta] = np.tile(np.asarray(p.beta, float), B)
        else:  # a neuron model's parameters, one value per neuron
            N = self.n_rec
            for name, var in self.model_code.parameters.items():
                v = np.broadcast_to(np.asarray(self.neuron_values[name], float), (N,))
                values[getattr(rec, var)] = np.tile(v, B)
        values[rec.n_ref] = np.full(B * self.n_rec, float(p.n_ref))
        values[out.b] = np.tile(np.asarray(weights.b_out, float), B)
        return values

    def _in_trial_values(self, values: dict, lr: float, output_lr: float | None, decay: float) -> None:
        rec, out = self.groups["recurrent"], self.groups["readout"]
        values[rec.in_trial_lr] = np.asarray(float(lr))
        values[rec.in_trial_decay] = np.asarray(float(decay))
        values[out.in_trial_lr] = np.asarray(float(lr if output_lr is None else output_lr))
        values[out.in_trial_decay] = np.asarray(float(decay))

    def _adam_values(self, values: dict, adam: dict) -> None:
        rec, out = self.groups["recurrent"], self.groups["readout"]
        for grp in (rec, out):
            values[grp.adam_b1] = np.asarray(float(adam.get("b1", 0.9)))
            values[grp.adam_b2] = np.asarray(float(adam.get("b2", 0.999)))
            values[grp.adam_eps] = np.asarray(float(adam.get("eps", 1e-8)))
            values[grp.adam_t0] = np.asarray(float(adam.get("t", 0)))
        targets = {**self.synapses, "bias": out}
        for mom in ("m", "v"):
            given = adam.get(mom, {})
            for key, obj in targets.items():
                n = self.n_out if key == "bias" else self._b2_edges[key][0].size
                vec = np.asarray(given.get(key, np.zeros(n)), dtype=float)
                if vec.shape != (n,):
                    raise ValueError(f"adam[{mom!r}][{key!r}] must have shape ({n},), got {vec.shape}")
                if key != "bias":
                    vec = self._log_to_b2(key, vec)
                name = f"{mom}b_adam" if key == "bias" else f"{mom}_adam"
                # every copy: the same moments (one copy: the vector itself, only written to the launch)
                values[getattr(obj, name)] = vec if self.batch == 1 else np.tile(vec, self.batch)

    def _trial_arrays(self, trials: list, *, in_time: bool = False) -> dict:
        """TimedArray -> values: each trial's inputs (cpp_standalone: the byte table, key ``INPUT_TABLE``),
        targets (zeros if omitted) and, if the loss reads it, its recall-window mask (ones if omitted).  The
        trials go side by side, one per copy (a mask column per readout unit when there are several copies),
        or — ``in_time`` — iteration after iteration (a chunk of ``chunk_trials``, each iteration's trials
        side by side); the places without a trial get silent inputs."""
        T, n_out = self.n_steps, self.n_out
        K, B = (self.chunk if in_time else 1), self.batch
        x = np.zeros((K, T, B, self.n_in), dtype=np.uint8 if self._tables else float)
        y = np.zeros((K, T, B, n_out))
        m = np.ones((K, T, B))
        for k, (xk, yk, mk) in enumerate(trials):
            at = (k // B, slice(None), k % B)
            x[at] = self._check_input(xk)
            if yk is not None:
                y[at] = np.asarray(yk, float)
            if mk is not None:
                m[at] = np.asarray(mk, float)
        inputs = INPUT_TABLE if self._tables else self.X
        arrays = {inputs: x.reshape(K * T, B * self.n_in), self.Y: y.reshape(K * T, B * n_out)}
        if self.loss.uses_mask:
            m = m.reshape(K * T, B)
            arrays[self.M] = m if B == 1 else np.repeat(m, n_out, axis=1)
        return arrays

    def _check_fixed(self, p: ModelParams) -> None:
        if self.gradients and self.model_code is None and not self.adaptation and np.any(p.beta != 0.0):
            raise ValueError(
                "this network was built without adaptation traces (all beta = 0); "
                "build it with adaptation=True to run ALIF neurons"
            )
        q = self.params
        same = np.array_equal(p.rho, q.rho) and np.array_equal(p.beta, q.beta)
        if self.model_code is not None and not same:
            raise ValueError("ρ and β are fixed when a network is generated from the model's equations")
        for name in ("dt", "alpha", "v_th", "gamma", "kappa", "input_scale", "readout_scale"):
            if abs(getattr(p, name) - getattr(q, name)) > 0.0:
                raise ValueError(f"parameter {name!r} is fixed when the network is built")
        if p.surrogate != q.surrogate:
            raise ValueError("the surrogate is fixed when the network is built")
