"""The factorized e-prop gradient (docs/model.md §3) as C++ that a cpp_standalone binary runs after its
simulation, so that ψ never leaves the binary (docs/model.md §9).

The NumPy reference is :func:`neuroplast.gradients.eprop.eprop_grads_batch` (``_eprop_factorized_batch``,
``_adjoint_scan``, ``_contract`` and :func:`neuroplast.model.signals.output_grads_batch`); the code below
does, for every copy of the network (trial b of a batch side by side) and element by element, the same
multiplies, adds and subtractions in the same order::

    ẽrr_t = err_t + κ ẽrr_{t+1}                         backward κ-filter of the loss error (n_out columns)
    h_t   = (Σ_k (c_out ẽrr_t,k) B_jk + R_j) ψ_t         L̃ + R times ψ (R_j = c_reg (count_j / T − f*) / T)
    q_t   = (ρ − β ψ_{t+1}) q_{t+1} + c_{t+1},  c_t = −β h_t,  F_t = h_t + ψ_t q_t   (adapting neurons only)
    G_t   = F_t + α G_{t+1}                               backward α-filter
    ∂W_in[j, i]  = Σ over i's input spikes s (ascending) of G_s,j · c_in
    ∂W_rec[j, i] = Σ over i's spikes s < T − 1 (ascending) of G_{s+1},j · c_in
    ∂W_out[k, j] = Σ over j's spikes s (ascending) of c_out ẽrr_s,k
    ∂b_k         = Σ_t err_t,k b̃_t,  b̃_t = κ b̃_{t−1} + 1

Where NumPy sums through BLAS (L̃'s n_out-term products, the readout's Σ_t and the bias's dot product, and
drives of over 10 % nonzero entries) the order of those sums is BLAS's own, so the two agree to rounding
(≤ 1e-12 relative, tests/network/test_compiled_gradients.py), not to the bit.  Each copy is computed
independently (OpenMP threads over the copies when the binary has them): the result of a trial does not
depend on the batch size or the thread count.

Nothing here imports Brian2: :func:`gradient_code` fills the array names that the builder looked up in
the device into one C++ block.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["ARRAYS", "Sizes", "gradient_code"]

#: The Brian2 arrays the block reads or writes, by the name the template uses.  ``2d``: a monitor's
#: (steps, recorded neurons) DynamicArray2D; ``vec``: a std::vector (a spike monitor's or synapses'
#: dynamic array); ``ptr``: a group's fixed-size array (one value for a shared variable).
ARRAYS: dict[str, str] = {
    "psi": "2d",  # ψ_t of every recurrent neuron of every copy
    "err": "2d",  # the loss error of every readout unit of every copy
    "in_i": "vec",  # input spikes: neuron, time (s)
    "in_t": "vec",
    "rec_i": "vec",  # recurrent spikes: neuron, time (s)
    "rec_t": "vec",
    "count": "ptr",  # spikes per recurrent neuron
    "rho": "ptr",
    "beta": "ptr",
    "alpha": "ptr",
    "kappa": "ptr",
    "c_in": "ptr",
    "c_out": "ptr",
    "dt": "ptr",
    "reg_c": "ptr",  # c_reg, T and f* (spikes per step) of the rate regularizer (run arguments)
    "reg_T": "ptr",
    "reg_f": "ptr",
    "in_pre": "vec",  # synapses of each projection: presynaptic, postsynaptic neuron, gradient (written)
    "in_post": "vec",
    "in_g": "vec",
    "rec_pre": "vec",
    "rec_post": "vec",
    "rec_g": "vec",
    "out_pre": "vec",
    "out_post": "vec",
    "out_B": "vec",  # B_jk of readout synapse k ← j
    "out_g": "vec",
    "gb": "ptr",  # the bias gradient (written)
}


@dataclass(frozen=True)
class Sizes:
    """Sizes of one copy of the network, the number of copies and the steps per trial."""

    copies: int
    n_in: int
    n_rec: int
    n_out: int
    n_steps: int


_TEMPLATE = r"""
{ // neuroplast: factorized e-prop gradients of every copy (neuroplast/network/factorized.py)
  const int NPB = @copies@, NPI = @n_in@, NPN = @n_rec@, NPK = @n_out@, NPT = @n_steps@;
  const double np_alpha = @alpha@[0], np_kappa = @kappa@[0], np_cin = @c_in@[0], np_cout = @c_out@[0];
  const double np_dt = @dt@[0], np_rc = @reg_c@[0], np_rT = @reg_T@[0], np_rf = @reg_f@[0];
  const bool np_reg = np_rc != 0.0;
  if (@psi@.n != NPT || @err@.n != NPT) {
    std::cerr << "neuroplast: the gradient monitors hold " << @psi@.n << " steps, expected " << NPT
              << std::endl;
    exit(3);
  }
  // spikes by copy as (step, neuron of the copy), in the monitors' (time) order
  std::vector< std::vector< std::pair<int, int> > > np_in_spk(NPB), np_rec_spk(NPB);
  for (size_t s = 0; s < @in_i@.size(); s++) {
    const int n = @in_i@[s];
    np_in_spk[n / NPI].push_back(std::make_pair((int)floor(@in_t@[s] / np_dt + 0.5), n % NPI));
  }
  for (size_t s = 0; s < @rec_i@.size(); s++) {
    const int n = @rec_i@[s];
    np_rec_spk[n / NPN].push_back(std::make_pair((int)floor(@rec_t@[s] / np_dt + 0.5), n % NPN));
  }
  const size_t np_e_in = @in_g@.size() / NPB, np_e_rec = @rec_g@.size() / NPB;
  const size_t np_e_out = @out_g@.size() / NPB;
  #pragma omp parallel
  {
  std::vector<double> G((size_t)NPT * NPN), ef((size_t)NPT * NPK), fb((size_t)NPN * NPK), R(NPN);
  std::vector<double> gin((size_t)NPI * NPN), grec((size_t)NPN * NPN), gout((size_t)NPN * NPK);
  std::vector<double> q(NPN), c(NPN);
  std::vector<int> alif;
  #pragma omp for schedule(static)
  for (int b = 0; b < NPB; b++) {
    // ẽrr: the backward κ-filter of the loss error
    for (int k = 0; k < NPK; k++) {
      double acc = 0.0;
      for (int t = NPT - 1; t >= 0; t--) {
        acc = np_kappa * acc + @err@(t, b * NPK + k);
        ef[(size_t)t * NPK + k] = acc;
      }
    }
    // B of this copy, R and the adapting neurons
    for (size_t e = 0; e < np_e_out; e++) {
      const size_t s = b * np_e_out + e;
      fb[(size_t)(@out_pre@[s] - b * NPN) * NPK + (@out_post@[s] - b * NPK)] = @out_B@[s];
    }
    alif.clear();
    for (int j = 0; j < NPN; j++) {
      R[j] = np_reg ? np_rc * (@count@[b * NPN + j] / np_rT - np_rf) / np_rT : 0.0;
      if (@beta@[b * NPN + j] != 0.0) alif.push_back(j);
      q[j] = 0.0;
    }
    // h = (L̃ + R) ψ
    for (int t = 0; t < NPT; t++) {
      const double* ps = &@psi@(t)[0] + (size_t)b * NPN;
      double* g = &G[(size_t)t * NPN];
      const double* e = &ef[(size_t)t * NPK];
      for (int j = 0; j < NPN; j++) {
        double l = 0.0;
        for (int k = 0; k < NPK; k++) l += (np_cout * e[k]) * fb[(size_t)j * NPK + k];
        if (np_reg) l = l + R[j];
        g[j] = l * ps[j];
      }
    }
    // G: the adjoint of ε^a over the adapting neurons, fused with the backward α-filter
    const int nA = (int)alif.size();
    for (int t = NPT - 1; t >= 0; t--) {
      double* g = &G[(size_t)t * NPN];
      const double* ps = &@psi@(t)[0] + (size_t)b * NPN;
      const double* psn = t < NPT - 1 ? &@psi@(t + 1)[0] + (size_t)b * NPN : 0;
      for (int a = 0; a < nA; a++) {
        const int j = alif[a];
        const double rho = @rho@[b * NPN + j], beta = @beta@[b * NPN + j];
        if (t < NPT - 1) {
          const double tmp = rho - beta * psn[j];
          q[a] = tmp * q[a] + c[a];
        }
        c[a] = (-beta) * g[j];
        if (t < NPT - 1) g[j] = g[j] + ps[j] * q[a];
      }
      if (t < NPT - 1) {
        const double* gn = g + NPN;
        for (int j = 0; j < NPN; j++) g[j] = g[j] + np_alpha * gn[j];
      }
    }
    // the contractions with the spike trains, each sum in step order
    gin.assign(gin.size(), 0.0);
    grec.assign(grec.size(), 0.0);
    gout.assign(gout.size(), 0.0);
    const double v_in = np_cin * 1.0;
    for (size_t s = 0; s < np_in_spk[b].size(); s++) {
      const double* g = &G[(size_t)np_in_spk[b][s].first * NPN];
      double* out = &gin[(size_t)np_in_spk[b][s].second * NPN];
      for (int j = 0; j < NPN; j++) out[j] += g[j] * v_in;
    }
    for (size_t s = 0; s < np_rec_spk[b].size(); s++) {
      const int step = np_rec_spk[b][s].first, i = np_rec_spk[b][s].second;
      double* o = &gout[(size_t)i * NPK];
      for (int k = 0; k < NPK; k++) o[k] += np_cout * ef[(size_t)step * NPK + k];
      if (step >= NPT - 1) continue;  // c_in z_{t−1}: the last step's spikes drive nothing
      const double* g = &G[(size_t)(step + 1) * NPN];
      double* out = &grec[(size_t)i * NPN];
      for (int j = 0; j < NPN; j++) out[j] += g[j] * v_in;
    }
    // the bias: Σ_t err_t b̃_t
    for (int k = 0; k < NPK; k++) {
      double btil = 0.0, acc = 0.0;
      for (int t = 0; t < NPT; t++) {
        btil = np_kappa * btil + 1.0;
        acc += @err@(t, b * NPK + k) * btil;
      }
      @gb@[b * NPK + k] = acc;
    }
    // every synapse of this copy: its gradient
    for (size_t e = 0; e < np_e_in; e++) {
      const size_t s = b * np_e_in + e;
      @in_g@[s] = gin[(size_t)(@in_pre@[s] - b * NPI) * NPN + (@in_post@[s] - b * NPN)];
    }
    for (size_t e = 0; e < np_e_rec; e++) {
      const size_t s = b * np_e_rec + e;
      @rec_g@[s] = grec[(size_t)(@rec_pre@[s] - b * NPN) * NPN + (@rec_post@[s] - b * NPN)];
    }
    for (size_t e = 0; e < np_e_out; e++) {
      const size_t s = b * np_e_out + e;
      @out_g@[s] = gout[(size_t)(@out_pre@[s] - b * NPN) * NPK + (@out_post@[s] - b * NPK)];
    }
  }
  }
@clear@}
"""


def gradient_code(names: Mapping[str, str], sizes: Sizes, *, clear: tuple[str, ...] = ()) -> str:
    """The C++ block (for ``device.insert_code("after_network_run", ...)``) of the factorized gradients.

    Parameters
    ----------
    names : mapping
        The device's name of every array in :data:`ARRAYS` (``get_array_name``; for a dynamic array the
        array object itself, ``access_data=False``).
    sizes : Sizes
    clear : tuple of str
        Keys of ``names`` (``2d`` or ``vec`` arrays) emptied after the gradients, so that the binary does not
        write them to its results (the monitors that only the gradient reads: ψ, the error, input spikes).
    """
    missing = sorted(set(ARRAYS) - set(names))
    if missing:
        raise ValueError(f"gradient_code: no array name for {', '.join(missing)}")
    bad = sorted(k for k in clear if ARRAYS.get(k) not in ("2d", "vec"))
    if bad:
        raise ValueError(f"gradient_code: cannot clear {', '.join(bad)}")
    code = _TEMPLATE
    for key, value in {**{k: str(v) for k, v in vars(sizes).items()}, **names}.items():
        code = code.replace(f"@{key}@", value)
    lines = "".join(
        f"  {names[k]}.resize(0, 0);\n"
        if ARRAYS[k] == "2d"
        else f"  std::vector<{_VEC_TYPES[k]}>().swap({names[k]});\n"
        for k in clear
    )
    code = code.replace("@clear@", lines)
    if "@" in code:
        raise ValueError("gradient_code: a placeholder was left unfilled")
    return code


#: Element types of the ``vec`` arrays that may be cleared.
_VEC_TYPES = {"in_i": "int32_t", "in_t": "double"}
