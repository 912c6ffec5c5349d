"""Reading a launch of a :class:`~neuroplast.network.builder.Brian2Network` back: monitors and
accumulators split per trial into :class:`~neuroplast.model.simulator.TrialResult`, in the log's edge
order."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from neuroplast.model.simulator import TrialResult
from neuroplast.network.assembly import RECORDABLE


class DenseOnRead(Mapping[str, np.ndarray]):
    """A trial's gradients kept as edge vectors and given as the dense (post × pre) matrices of
    :attr:`TrialResult.grads <neuroplast.model.simulator.TrialResult.grads>`, each made when it is read.

    A launch of K trials would otherwise hold K dense gradients of every projection at once (K · N² · 8
    bytes of a sparse recurrent net: 74 MB per trial at N = 3,000) while the trainer takes them one trial at
    a time.  Every read returns a new array (zeros off the edges, the edge values at ``[target, source]``),
    the same values bit for bit as the dense matrix made at once.

    Parameters
    ----------
    vectors : mapping of str to ndarray
        One edge vector per projection (in the order of ``edges``), and ``bias`` (one value per readout
        unit, returned as a copy).
    edges : mapping of str to (ndarray, ndarray)
        (source, target) ids of each synaptic projection.
    shapes : mapping of str to (int, int)
        (post, pre) of each synaptic projection.
    to_log : mapping of str to ndarray, optional
        Per projection, the permutation that puts ``vectors`` in the run log's edge order
        (:meth:`edge_vector`); none: they are in it.
    """

    def __init__(
        self,
        vectors: Mapping[str, np.ndarray],
        edges: Mapping[str, tuple[np.ndarray, np.ndarray]],
        shapes: Mapping[str, tuple[int, int]],
        to_log: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self._vectors, self._edges, self._shapes = dict(vectors), edges, shapes
        self._to_log = to_log or {}

    def edge_vector(self, key: str) -> np.ndarray:
        """The gradient of ``key`` as an edge vector in the run log's order (the trainer's form where its
        optimizer steps on edge vectors: no dense matrix is made); a new array."""
        vec = self._vectors[key]
        perm = self._to_log.get(key) if key in self._shapes else None
        return vec.copy() if perm is None else vec[perm]

    def __getitem__(self, key: str) -> np.ndarray:
        vec = self._vectors[key]
        if key not in self._shapes:
            return vec.copy()
        g = np.zeros(self._shapes[key])
        src, tgt = self._edges[key]
        g[tgt, src] = vec
        return g

    def __iter__(self) -> Iterator[str]:
        return iter(self._vectors)

    def __len__(self) -> int:
        return len(self._vectors)


#: Per-synapse variables of every projection that no launch reads back: the synapses' source and target
#: ids (Python has them: the edge tables of network/edges.py) and their delay (one value of the network).
STRUCTURAL = ("_synaptic_pre", "_synaptic_post", "N_incoming", "N_outgoing", "delay")
#: What a chunked launch does not read back either: the weights and Adam's moments after its last step,
#: which NumPy replicates iteration by iteration and checks against the launch's records.
REPLICATED = ("w", "m_adam", "v_adam")


class Readback:
    """Per-trial results of a launch."""

    def _unread_variables(self) -> list:
        """The Brian2 variables that no launch of this network reads back (:data:`STRUCTURAL`, and
        :data:`REPLICATED` on a chunked network): the device leaves their writes out of the binary
        (:meth:`~neuroplast.network.engine.NeuroplastDevice.leave_unwritten`)."""
        names = STRUCTURAL + (REPLICATED if self.chunk else ())
        synapses = [*self.synapses.values(), *self._elig.values()]
        return [syn.variables[n] for syn in dict.fromkeys(synapses) for n in names if n in syn.variables]

    def _edge_rows(self, mons: dict, var: dict) -> dict[str, np.ndarray]:
        """Monitor rows (one per boundary tick) of every projection, (ticks, copies, values) in the log's
        edge order, and of the bias (``feedback``: B of the readout synapses; the log's feedback edges are
        the output projection's, in its order: :class:`~neuroplast.model.connectivity.Connectivity`)."""
        out = {}
        for key, mon in mons.items():
            rows = np.asarray(getattr(mon, var[key])[:]).T
            rows = rows.reshape(rows.shape[0], self.batch, -1)  # each copy's values, copy after copy
            synapses = "output" if key == "feedback" else key
            if key == "bias":
                out[key] = rows.copy()
            elif synapses in self._in_log_order:  # Brian2 holds them in the log's order: no copy
                out[key] = rows
            else:
                out[key] = rows[:, :, self._to_log[synapses]]
        return out

    def _collect_chunk(self, n: int) -> list[TrialResult]:
        """Split one launch of ``n`` iterations (each of :attr:`batch` trials side by side) into per-trial
        results, iteration by iteration (the last iteration's gradients are the state at the end of the
        launch, the others' are taken at the next iteration's boundary)."""
        T, N, B, k_out = self.n_steps, self.n_rec, self.batch, self.n_out
        y = np.asarray(self.out_mon.y[:]).T
        steps = np.rint(np.asarray(self.spike_mon.t_[:]) / (self.params.dt * 1e-3)).astype(np.int64)
        ids = np.asarray(self.spike_mon.i[:]).astype(np.int64)
        # the spikes of each trial (iteration k, copy b), in the monitor's order
        trial_of = (steps // T) * B + ids // N
        order = np.argsort(trial_of, kind="stable")
        bounds = np.searchsorted(trial_of[order], np.arange(n * B + 1))
        hidden = "g" if self.factorized else "gt"  # the gradient the boundary step took
        grads = self._edge_rows(
            self.chunk_grad_mons, {"input": hidden, "recurrent": hidden, "output": "g", "bias": "gb"}
        )
        used = self._edge_rows(
            self.chunk_weight_mons,
            {"input": "w", "recurrent": "w", "output": "w", "bias": "b", "feedback": "B"},
        )
        shapes = {"input": (N, self.n_in), "recurrent": (N, N), "output": (self.n_out, N)}
        raw = self._factorized_arrays() if self.factorized else self._gradient_arrays()
        results = []
        for k in range(n):
            for b in range(B):
                mine = order[bounds[k * B + b] : bounds[k * B + b + 1]]
                t_k, i_b = steps[mine] - k * T, ids[mine] - b * N
                res = TrialResult(
                    y=y[k * T : (k + 1) * T, b * k_out : (b + 1) * k_out].copy(),
                    spike_count=np.bincount(i_b, minlength=N).astype(float),
                    spikes=(t_k, i_b),
                    # views of the launch's rows (read-only: the trainer compares them, never changes them)
                    ran_with={key: _read_only(rows[k, b]) for key, rows in used.items()},
                )
                if k + 1 < n:  # taken at the next boundary, regularization included; dense when read
                    vectors = {key: grads[key][k + 1, b] for key in (*shapes, "bias")}
                    res.grads = DenseOnRead(vectors, self.edges, shapes)
                    res.regularized = True
                else:  # the last iteration of a launch: the state at its end
                    res.grads, res.esum = self._copy_gradients(raw, b)
                    res.regularized = self.factorized  # the binary's gradients include the rate regularizer
                results.append(res)
        return results

    def _collect(self, n: int) -> list[TrialResult]:
        """What the monitors and accumulators hold after a launch, per trial (copies 0 … n − 1), in the
        log's edge order."""
        rec, N, k = self.groups["recurrent"], self.n_rec, self.n_out
        y = np.asarray(self.out_mon.y[:]).T
        count = np.asarray(rec.count[:])
        steps = np.rint(np.asarray(self.spike_mon.t_[:]) / (self.params.dt * 1e-3)).astype(np.int64)
        ids = np.asarray(self.spike_mon.i[:]).astype(np.int64)
        # (T, copies · N) per variable, as the monitor stores it: cpp_standalone reads a fresh array from the
        # results file, the runtime device's storage is reused by the next trial (copied)
        fresh = self._compiled
        states = {}
        for name in self._recorded:
            if name != "z":
                a = self.rec_mon.variables[self.monitored.get(name, name)].get_value()
                states[name] = a if fresh else np.array(a)
                states[name].flags.writeable = False
        raw = (
            self._gradient_arrays()
            if self.gradients
            else self._factorized_arrays()
            if self.factorized
            else None
        )
        results = []
        for b in range(n):
            sel = (ids >= b * N) & (ids < (b + 1) * N)
            res = TrialResult(
                y=y[:, b * k : (b + 1) * k].copy(),
                spike_count=count[b * N : (b + 1) * N].copy(),
                spikes=(steps[sel], ids[sel] - b * N),
            )
            for name, a in states.items():
                # a view of the launch's (T, copies · N) array, read-only: the batch's gradient reads the
                # trials side by side from it without copying (model.signals.side_by_side)
                mine = a[:, b * N : (b + 1) * N]
                if self.model_code is not None and name in self.model_code.model.state:
                    res.state = {**(res.state or {}), name: mine}  # a neuron model's own state
                    if name not in RECORDABLE:  # v, a: also TrialResult's own fields
                        continue
                setattr(res, name, mine > 0.5 if name == "refractory" else mine)
            if self.record and res.z is None:  # the same 0/1 values as a monitor of z
                res.z = np.zeros((self.n_steps, N))
                res.z[res.spikes] = 1.0
            if raw is not None:
                res.grads, res.esum = self._copy_gradients(raw, b)
                res.regularized = self.factorized  # the binary's gradients include the rate regularizer
            results.append(res)
        if self.update_every:
            m = self.in_trial_mons
            results[0].in_trial = {
                "input": np.asarray(m["input"].w[:]).T[:, self._to_log["input"]],
                "recurrent": np.asarray(m["recurrent"].w[:]).T[:, self._to_log["recurrent"]],
                "output": np.asarray(m["output"].w[:]).T.copy(),
                "feedback": np.asarray(m["output"].B[:]).T.copy(),
                "bias": np.asarray(m["bias"].b[:]).T.copy(),
            }
        if self.adam:
            results[0].adam = self._collect_adam()
        return results

    def _gradient_arrays(self) -> dict:
        """The accumulators of every copy as Brian2 holds them (read once per launch)."""
        raw = {"A": np.asarray(self.groups["recurrent"].A[:]) if self.event_driven else None}
        raw["bias"] = np.asarray(self.groups["readout"].gb[:])
        for key in self.synapses:
            syn = self._elig.get(key, self.synapses[key])
            raw[key] = {"g": np.asarray(syn.g[:])}
            if key != "output":
                raw[key]["ebar"] = np.asarray(syn.ebar[:]) if self.event_driven else None
                raw[key]["esum"] = np.asarray(syn.esum[:]) if self.regularization else None
        return raw

    def _factorized_arrays(self) -> dict:
        """The gradients the binary computed (network/factorized.py), in :meth:`_gradient_arrays`' form."""
        raw: dict = {"A": None, "bias": np.asarray(self.groups["readout"].gb[:])}
        for key, syn in self.synapses.items():
            raw[key] = {"g": np.asarray(syn.g[:])}
        return raw

    def _collect_gradients(self) -> tuple[DenseOnRead, DenseOnRead]:
        """Dense gradients per projection (and the bias), and Σ e per synapse (with regularization), of a
        network of one copy (:meth:`_copy_gradients`)."""
        return self._copy_gradients(self._gradient_arrays(), 0)

    def _copy_gradients(self, raw: dict, b: int) -> tuple[DenseOnRead, DenseOnRead]:
        """Gradients per projection (and the bias), and Σ e per synapse, of copy ``b``: edge vectors of their
        own (the simulation's arrays may be reused by its next run), dense when read."""
        grads, esum = {}, {}
        N = self.n_rec
        for key in self._sizes:
            src = self._elig_edges[key][0]
            part = slice(b * src.size, (b + 1) * src.size)
            g_syn = raw[key]["g"][part]
            if raw["A"] is not None and key != "output":  # Σ L ē of the steps after each neuron's last event
                g_syn = (
                    g_syn + raw["A"][b * N : (b + 1) * N][self._elig_edges[key][1]] * raw[key]["ebar"][part]
                )
            grads[key] = np.array(g_syn)
            if key != "output" and self.regularization:
                esum[key] = np.array(raw[key]["esum"][part])
        grads["bias"] = raw["bias"][b * self.n_out : (b + 1) * self.n_out].copy()
        shapes = {key: (n_post, n_pre) for key, (n_pre, n_post) in self._sizes.items()}
        # only the projections whose eligibility order is not the log's need a permutation (a copy)
        to_log = {k: v for k, v in self._elig_to_log.items() if k not in self._elig_in_log_order}
        return (
            DenseOnRead(grads, self._elig_edges, shapes, to_log),
            DenseOnRead(esum, self._elig_edges, shapes, to_log),
        )

    def _collect_adam(self) -> dict:
        """In-trial Adam's moments after the trial, in edge order."""
        targets = {**self.synapses, "bias": self.groups["readout"]}
        return {
            mom: {
                key: np.asarray(getattr(obj, f"{mom}_adam")[:])[self._to_log[key]]
                if key != "bias"
                else np.asarray(getattr(obj, f"{mom}b_adam")[:]).copy()
                for key, obj in targets.items()
            }
            for mom in ("m", "v")
        }


def _read_only(a: np.ndarray) -> np.ndarray:
    """``a`` as a read-only view."""
    view = a.view()
    view.flags.writeable = False
    return view
