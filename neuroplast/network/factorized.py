"""The factorized e-prop gradient (docs/model.md §3) as C++ that a cpp_standalone binary runs after its
simulation — and, with several iterations per launch, at every trial boundary, where the optimizer steps on
it inside the binary (:func:`boundary_code`, docs/model.md §7) — so that ψ never leaves the binary
(docs/model.md §9).  The code reads the last trial's steps of the launch's records: the error monitor's
last T rows and the spikes from that trial's first step on; ψ's record holds that trial alone.

The NumPy reference is :func:`neuroplast.gradients.eprop.eprop_grads_batch` (``_eprop_factorized_batch``,
``_adjoint_scan``, ``_contract`` and :func:`neuroplast.model.signals.output_grads_batch`); the code below
does, for every copy of the network (trial b of a batch side by side) and element by element, the same
multiplies, adds and subtractions in the same order::

    ẽrr_t = err_t + κ ẽrr_{t+1}                         backward κ-filter of the loss error (n_out columns)
    h_t   = (Σ_k (c_out ẽrr_t,k) B_jk + R_j) ψ_t         L̃ + R times ψ (R_j = c_reg (count_j / T − f*) / T)
    q_t   = (ρ − β ψ_{t+1}) q_{t+1} + c_{t+1},  c_t = −β h_t,  F_t = h_t + ψ_t q_t   (adapting neurons only)
    G_t   = F_t + α G_{t+1}                               backward α-filter
    ∂W_in[j, i]  = Σ over i's input spikes s of G_s,j · c_in
    ∂W_rec[j, i] = Σ over i's spikes s < T − 1 of G_{s+1},j · c_in
    ∂W_out[k, j] = Σ over j's spikes s of c_out ẽrr_s,k
    ∂b_k         = Σ_t err_t,k b̃_t,  b̃_t = κ b̃_{t−1} + 1

All of it is one pass backward in time over the rows of all copies (ψ is read once, in order, and G is
never stored: each step's G_t is contracted with that step's spikes while it is at hand), so the three
spike sums run from the last spike to the first, where NumPy adds in step order; and where NumPy sums
through BLAS (L̃'s n_out-term products, the readout's Σ_t and the bias's dot product, drives of over 10 %
nonzero entries) the order is BLAS's own.  The two therefore agree to rounding (≤ 1e-12 relative,
tests/network/test_compiled_gradients.py), not to the bit.  Everything is elementwise over the row of all
copies, and each sum reads only its own copy's G and spikes: a trial's numbers do not depend on the batch.
∂W_rec is summed into the synapses themselves (each presynaptic spike adds to that neuron's synapses, the
same terms in the same order as into a dense N × N matrix, whose entries without a synapse were never
read): the binary holds 8 bytes per recurrent synapse, not 8 per pair of neurons (800 MB at N = 10,000).

With ``simulation.threads`` = P > 1 the pass is shared by P threads (``include/neuroplast_threads.h``),
thread w taking the columns j of its range of the recurrent neurons in every copy: its part of h, q, c and
G, the columns j of ∂W_in and ∂W_rec, and the rows of ∂W_out of the neurons j.  Every element is computed
by one thread, with the operations and the order of one thread: the gradients are the same to the bit for
every P (tests/training/test_batch.py).  Each thread reads the whole of ψ's record and the spikes; nothing
is exchanged until the pass ends, so a thread that the machine runs late delays only the end.

Nothing here imports Brian2: :func:`gradient_code` fills the array names that the builder looked up in
the device into one C++ block.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "ARRAYS",
    "BOUNDARY_FUNCTION",
    "PSI_HEADER",
    "PSI_RECORDER",
    "THREADS_HEADER",
    "Sizes",
    "boundary_code",
    "gradient_code",
    "psi_recorder",
]

#: The C++ header (in ``neuroplast/network/include``) of the record of ψ that the gradient code reads.
PSI_HEADER = "neuroplast_psi.h"
#: The C++ header of the threads that share the gradient code's work (``neuroplast_parallel``).
THREADS_HEADER = "neuroplast_threads.h"
#: The least work (element updates: the recurrent neurons times the spikes, plus steps times neurons) per
#: thread of the gradient code: smaller gradients are computed in one thread, with the same bits (2**25:
#: ≈ 10 ms; at N = 1,000, p = 0.1 and 23 Hz a sine trial is 2.9e7, at N = 3,000 and 11 Hz 1.2e8).
MIN_THREAD_WORK = 2**25
#: The Brian2 function that appends each step's ψ to that record (:func:`psi_recorder`).
PSI_RECORDER = "neuroplast_record_psi"


def psi_recorder(psi_array: str) -> str:
    """The C++ of :data:`PSI_RECORDER`: called once per step (by a group of one element), it appends the
    nonzero values of ``psi_array`` (the device's name of the recurrent neurons' ψ) to the record."""
    return f"inline double {PSI_RECORDER}(int) {{ neuroplast_psi_push(brian::{psi_array}); return 0.0; }}"


#: The Brian2 arrays the block reads or writes, by the name the template uses.  ``2d``: a monitor's
#: (steps, recorded neurons) DynamicArray2D; ``vec``: a std::vector (a spike monitor's or synapses'
#: dynamic array); ``ptr``: a group's fixed-size array (one value for a shared variable).
ARRAYS: dict[str, str] = {
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
    """Sizes of one copy of the network, the number of copies and the steps per trial; ``threads``: the
    threads that share the work (each a range of the recurrent neurons' columns, then of the synapses)."""

    copies: int
    n_in: int
    n_rec: int
    n_out: int
    n_steps: int
    threads: int = 1


_TEMPLATE = r"""
{ // neuroplast: factorized e-prop gradients of every copy (neuroplast/network/factorized.py)
  const int NPB = @copies@, NPI = @n_in@, NPN = @n_rec@, NPK = @n_out@, NPT = @n_steps@, NPTH = @threads@;
  const int NPW = NPB * NPN, NPC = NPB * NPK;
  const double np_alpha = @alpha@[0], np_kappa = @kappa@[0], np_cin = @c_in@[0], np_cout = @c_out@[0];
  const double np_dt = @dt@[0], np_rc = @reg_c@[0], np_rT = @reg_T@[0], np_rf = @reg_f@[0];
  const bool np_reg = np_rc != 0.0;
  // the trial's first step in the launch: 0, or — several trials per launch — the last trial's (the error
  // monitor holds every step of the launch so far, ψ's record only this trial's)
  const long np_T0 = (long)@err@.n - NPT;  // (rows: an int index, the one overload of every Brian2)
  if (neuroplast_psi_steps() != NPT || np_T0 < 0 || np_T0 % NPT != 0) {
    std::cerr << "neuroplast: the gradient records hold " << neuroplast_psi_steps() << " and " << @err@.n
              << " steps, expected " << NPT << " and a multiple of it" << std::endl;
    exit(3);
  }
  // B (B·N, K), R (B·N) and the adapting neurons of every copy
  const size_t np_e_in = @in_g@.size() / NPB;
  const size_t np_e_out = @out_g@.size() / NPB;
  std::vector<double> np_fb((size_t)NPK * NPW, 0.0), np_R(NPW, 0.0);  // np_fb[k·W + n]: B of neuron n
  for (size_t s = 0; s < @out_g@.size(); s++) {
    const int b = (int)(s / np_e_out);
    np_fb[(size_t)(@out_post@[s] - b * NPK) * NPW + @out_pre@[s]] = @out_B@[s];
  }
  std::vector<int> np_alif;  // indices into the row of all copies
  for (int n = 0; n < NPW; n++) {
    if (np_reg) np_R[n] = np_rc * (@count@[n] / np_rT - np_rf) / np_rT;
    if (@beta@[n] != 0.0) np_alif.push_back(n);
  }
  const int nA = (int)np_alif.size();
  // the trial's spikes (those from step np_T0 on: the monitors hold them in time order) and their steps
  // in the trial
  size_t np_in0 = @in_i@.size(), np_rec0 = @rec_i@.size();
  while (np_in0 > 0 && (long)floor(@in_t@[np_in0 - 1] / np_dt + 0.5) >= np_T0) np_in0--;
  while (np_rec0 > 0 && (long)floor(@rec_t@[np_rec0 - 1] / np_dt + 0.5) >= np_T0) np_rec0--;
  std::vector<int> np_in_step(@in_i@.size() - np_in0), np_rec_step(@rec_i@.size() - np_rec0);
  for (size_t s = 0; s < np_in_step.size(); s++)
    np_in_step[s] = (int)((long)floor(@in_t@[np_in0 + s] / np_dt + 0.5) - np_T0);
  for (size_t s = 0; s < np_rec_step.size(); s++)
    np_rec_step[s] = (int)((long)floor(@rec_t@[np_rec0 + s] / np_dt + 0.5) - np_T0);
  // The gradient matrices of the input and the readout, (presynaptic neuron of all copies) x (postsynaptic
  // neuron of its copy), zero: calloc's fresh pages are zero already (written only where a neuron spiked,
  // not cleared first).  The recurrent gradient is summed into its synapses themselves (no N x N matrix:
  // 8 bytes per synapse instead of 8 per pair of neurons), each synapse found from its presynaptic neuron
  // (np_rec_by_pre: the synapses of neuron m, in their order, at np_rec_start[m] .. np_rec_start[m + 1]).
  std::vector<double> np_q(nA, 0.0), np_c(nA, 0.0);
  const std::unique_ptr<double[], decltype(&free)> np_gin(
      (double*)calloc((size_t)NPB * NPI * NPN, sizeof(double)), &free),
      np_gout((double*)calloc((size_t)NPW * NPK, sizeof(double)), &free);
  std::vector<size_t> np_rec_start(NPW + 1, 0);
  for (size_t s = 0; s < @rec_g@.size(); s++) np_rec_start[@rec_pre@[s] + 1]++;
  for (int m = 0; m < NPW; m++) np_rec_start[m + 1] += np_rec_start[m];
  std::vector<int> np_rec_by_pre(@rec_g@.size());
  {
    std::vector<size_t> at(np_rec_start.begin(), np_rec_start.end() - 1);
    for (size_t s = 0; s < @rec_g@.size(); s++) np_rec_by_pre[at[@rec_pre@[s]]++] = (int)s;
  }
  for (size_t s = 0; s < @rec_g@.size(); s++) @rec_g@[s] = 0.0;
  if (!np_gin || !np_gout) {
    std::cerr << "neuroplast: no memory for the gradients" << std::endl;
    exit(3);
  }
  const double v_in = np_cin * 1.0;
  // Threads only for work worth one: the parts are independent, so any number of them gives the same bits,
  // and below @min_work@ element updates per part (a few ms) they run one after the other in this thread —
  // a thread's start and, on a loaded machine, the wait for it cost more than it saves.
  const double np_work = (double)NPN * (np_in_step.size() + np_rec_step.size()) + (double)NPT * NPW;
  const int np_parts = np_work >= @min_work@ * NPTH ? NPTH : std::max(1, (int)(np_work / @min_work@));
  // One pass from t = T down to 1 over the rows of all copies (ψ's record read once, in order):
  //   ẽrr_t = err_t + κ ẽrr_{t+1};  h_t = (L̃_t + R) ψ_t;  adapting neurons: q_t = (ρ − β ψ_{t+1}) q_{t+1}
  //   + c_{t+1}, c_t = −β h_t, F_t = h_t + ψ_t q_t (else F_t = h_t);  G_t = F_t + α G_{t+1};
  //   then the contractions of G_t with the input spikes of step t and the recurrent spikes of step t − 1,
  //   and of c_out ẽrr_t with the recurrent spikes of step t (each sum over the steps, from the last).
  // Every column j of a copy is independent of the others: part w of np_parts takes the columns [j0, j1) of
  // every copy (G, q, c and the gradients' columns j; the readout's rows of neurons j) and does the whole
  // pass for them, with no exchange between parts.  Each element sees the same operations in the same
  // order for every number of parts (network/include/neuroplast_threads.h).
  neuroplast_parallel(np_parts, [&](int w) {
    const int j0 = (int)((long)NPN * w / np_parts), j1 = (int)((long)NPN * (w + 1) / np_parts);
    std::vector<int> mine;  // this worker's adapting neurons (indices into np_alif)
    for (int a = 0; a < nA; a++)
      if (np_alif[a] % NPN >= j0 && np_alif[a] % NPN < j1) mine.push_back(a);
    std::vector<double> np_ef(NPC, 0.0), np_G(NPW, 0.0), np_Gnext(NPW, 0.0), np_psi(NPW), np_psi_next(NPW);
    long in_s = (long)np_in_step.size() - 1, rec_s = (long)np_rec_step.size() - 1, pre_s = rec_s;
    for (int t = NPT - 1; t >= 0; t--) {
      neuroplast_psi_row(t, &np_psi[0]);  // ψ_t (network/include/neuroplast_psi.h)
      for (int c = 0; c < NPC; c++) np_ef[c] = np_kappa * np_ef[c] + @err@((int)(np_T0 + t), c);
      for (int b = 0; b < NPB; b++) {  // h_t = L̃_t + R times ψ_t, copy by copy
        // each h_j in one pass: 0, then L̃_t,j = Σ_k (c_out ẽrr_t,k) B_jk with the terms added in k's order,
        // then + R_j, then × ψ_t,j (NPK is a constant: the k-loop unrolls, the j-loop is the vector loop)
        double e[NPK];
        for (int k = 0; k < NPK; k++) e[k] = np_cout * np_ef[(size_t)b * NPK + k];
        double* h = &np_G[(size_t)b * NPN];
        const double* fb = &np_fb[(size_t)b * NPN];
        const double* R = &np_R[(size_t)b * NPN];
        const double* ps = &np_psi[(size_t)b * NPN];
        for (int j = j0; j < j1; j++) {
          double x = 0.0;
          for (int k = 0; k < NPK; k++) x = x + e[k] * fb[(size_t)k * NPW + j];
          if (np_reg) x = x + R[j];
          h[j] = x * ps[j];
        }
      }
      for (const int a : mine) {  // np_G holds h_t
        const int n = np_alif[a];
        const double rho = @rho@[n], beta = @beta@[n];
        if (t < NPT - 1) {
          const double tmp = rho - beta * np_psi_next[n];
          np_q[a] = tmp * np_q[a] + np_c[a];
        }
        np_c[a] = (-beta) * np_G[n];
        if (t < NPT - 1) np_G[n] = np_G[n] + np_psi[n] * np_q[a];
      }
      if (t < NPT - 1)
        for (int b = 0; b < NPB; b++)
          for (int n = b * NPN + j0; n < b * NPN + j1; n++) np_G[n] = np_G[n] + np_alpha * np_Gnext[n];
      for (; in_s >= 0 && np_in_step[in_s] == t; in_s--) {  // input neuron m = b·n_in + i spiked at t
        const int m = @in_i@[np_in0 + in_s], b = m / NPI;
        const double* g = &np_G[(size_t)b * NPN];
        double* out = &np_gin[(size_t)m * NPN];
        for (int j = j0; j < j1; j++) out[j] += g[j] * v_in;
      }
      while (pre_s >= 0 && np_rec_step[pre_s] >= t) pre_s--;  // (the last step's spikes drive nothing)
      for (; pre_s >= 0 && np_rec_step[pre_s] == t - 1; pre_s--) {  // neuron m spiked at t − 1: c_in z_{t−1}
        const int m = @rec_i@[np_rec0 + pre_s], b = m / NPN;
        const double* g = &np_G[(size_t)b * NPN];
        for (size_t e = np_rec_start[m]; e < np_rec_start[m + 1]; e++) {  // m's synapses onto columns j
          const int s = np_rec_by_pre[e], j = @rec_post@[s] - b * NPN;
          if (j >= j0 && j < j1) @rec_g@[s] += g[j] * v_in;
        }
      }
      for (; rec_s >= 0 && np_rec_step[rec_s] == t; rec_s--) {  // the readout: c_out ẽrr_t of spikes at t
        const int m = @rec_i@[np_rec0 + rec_s], b = m / NPN;
        if (m - b * NPN < j0 || m - b * NPN >= j1) continue;  // another worker's row
        for (int k = 0; k < NPK; k++) np_gout[(size_t)m * NPK + k] += np_cout * np_ef[(size_t)b * NPK + k];
      }
      np_G.swap(np_Gnext);
      np_psi.swap(np_psi_next);
    }
  });
  // the bias: Σ_t err_t b̃_t, b̃_t = κ b̃_{t−1} + 1
  for (int c = 0; c < NPC; c++) {
    double btil = 0.0, acc = 0.0;
    for (int t = 0; t < NPT; t++) {
      btil = np_kappa * btil + 1.0;
      acc += @err@((int)(np_T0 + t), c) * btil;
    }
    @gb@[c] = acc;
  }
  // every synapse: its gradient (g*[presynaptic neuron of all copies][postsynaptic neuron of its copy]),
  // each worker a range of synapses
  neuroplast_parallel(np_parts, [&](int w) {
    size_t n = @in_g@.size();
    for (size_t s = n * w / np_parts; s < n * (w + 1) / np_parts; s++) {
      const int b = (int)(s / np_e_in);
      @in_g@[s] = np_gin[(size_t)@in_pre@[s] * NPN + (@in_post@[s] - b * NPN)];
    }
    n = @out_g@.size();
    for (size_t s = n * w / np_parts; s < n * (w + 1) / np_parts; s++) {
      const int b = (int)(s / np_e_out);
      @out_g@[s] = np_gout[(size_t)@out_pre@[s] * NPK + (@out_post@[s] - b * NPK)];
    }
  });
@clear@}
"""


def gradient_code(
    names: Mapping[str, str], sizes: Sizes, *, clear: tuple[str, ...] = (), min_work: float = MIN_THREAD_WORK
) -> str:
    """The C++ block (for ``device.insert_code("after_network_run", ...)``) of the factorized gradients of
    the launch's (last) trial.

    Parameters
    ----------
    names : mapping
        The device's name of every array in :data:`ARRAYS` (``get_array_name``; for a dynamic array the
        array object itself, ``access_data=False``).
    sizes : Sizes
    clear : tuple of str
        Keys of ``names`` (``2d`` or ``vec`` arrays) emptied after the gradients, so that the binary does not
        write them to its results (the monitors that only the gradient reads: the error, the input spikes).
    min_work : float
        The least work per thread (:data:`MIN_THREAD_WORK`; 0: always ``sizes.threads`` threads).
    """
    missing = sorted(set(ARRAYS) - set(names))
    if missing:
        raise ValueError(f"gradient_code: no array name for {', '.join(missing)}")
    bad = sorted(k for k in clear if ARRAYS.get(k) not in ("2d", "vec"))
    if bad:
        raise ValueError(f"gradient_code: cannot clear {', '.join(bad)}")
    code = _TEMPLATE
    fill = {**{k: str(v) for k, v in vars(sizes).items()}, "min_work": f"{float(min_work)!r}", **names}
    for key, value in fill.items():
        code = code.replace(f"@{key}@", value)
    lines = "".join(f"  {names[k]}.{'resize(0, 0)' if ARRAYS[k] == '2d' else 'clear()'};\n" for k in clear)
    code = code.replace("@clear@", lines)
    if "@" in code:
        raise ValueError("gradient_code: a placeholder was left unfilled")
    return code


#: The Brian2 function of the chunked engine's boundary (:func:`boundary_code`).
BOUNDARY_FUNCTION = "neuroplast_boundary_gradient"
#: The C++ headers (besides :data:`PSI_HEADER` and :data:`THREADS_HEADER`) the boundary function's code
#: object needs: ``main.cpp``, where :func:`gradient_code` goes, has them already.
BOUNDARY_SYSTEM_HEADERS = ("<cmath>", "<iostream>")


def boundary_code(names: Mapping[str, str], sizes: Sizes, *, min_work: float = MIN_THREAD_WORK) -> str:
    """The C++ of :data:`BOUNDARY_FUNCTION`: at a boundary of the chunked engine (docs/model.md §7, §9),
    the finished trial's factorized gradients — :func:`gradient_code`'s block, the same operations in the
    same order, reading that trial's steps of the records — written where the boundary's optimizer step
    reads them, then ψ's record emptied for the next trial.

    Called once per boundary tick by a group of one element with ``active`` (0 at the tick at t = 0, before
    the first trial: nothing to do).  ``names`` as for :func:`gradient_code` (they are read from namespace
    ``brian``, as a code object's support code sees them).
    """
    block = gradient_code({k: f"brian::{v}" for k, v in names.items()}, sizes, min_work=min_work)
    return (
        f"double {BOUNDARY_FUNCTION}(double active) {{\n"
        "  if (!(active > 0.5)) return 0.0;\n"
        f"{block}"
        "  neuroplast_psi_clear();\n"
        "  return 0.0;\n"
        "}\n"
    )
