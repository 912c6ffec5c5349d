// neuroplast: ψ of every recurrent neuron at every step of a cpp_standalone launch, kept for the gradients
// that the binary computes after the run (neuroplast/network/factorized.py; docs/model.md §9).
//
// Only the nonzero values are kept, with their column (neuron of all copies), step by step: with the
// piecewise-linear surrogate ψ is zero at about three steps in four, so this takes about a third of the
// memory of a dense (steps x neurons) record, and the pages it never touches cost nothing.
#ifndef NEUROPLAST_PSI_H
#define NEUROPLAST_PSI_H

// Light includes only: every code object of a cpp_standalone network includes this header.
#include <cstddef>
#include <cstdint>
#include <vector>

struct NeuroplastPsi {
    double* vals = 0;                 // the nonzero values, step after step, neurons ascending
    int32_t* cols = 0;                // their neuron (of all copies)
    std::vector<size_t> start;    // start[t]: index of step t's first value
    size_t size = 0;              // values kept so far
    int width = 0;
    ~NeuroplastPsi() {
        delete[] vals;
        delete[] cols;
    }
};

// The one record of the process (an inline function's static: one object in every translation unit).
inline NeuroplastPsi& neuroplast_psi() {
    static NeuroplastPsi psi;
    return psi;
}

// Before the run: room for `steps` dense rows of `width` values.  The storage is allocated, not written
// (`new T[n]` leaves it uninitialised; a std::vector of that size would write zeros into every page): pages
// the record never reaches are never touched.
inline void neuroplast_psi_reserve(long steps, int width) {
    NeuroplastPsi& p = neuroplast_psi();
    p.width = width;
    p.size = 0;
    delete[] p.vals;
    delete[] p.cols;
    p.vals = new double[(size_t)steps * width];
    p.cols = new int32_t[(size_t)steps * width];
    p.start.reserve((size_t)steps + 1);
}

// Once per step: the step's row of ψ (all copies).  Each value is written at the next free place and kept
// (the place advances) only if it is nonzero: no branch per neuron.  A step writes at most `width` places
// past the values kept: within the room for the steps' dense rows.
inline void neuroplast_psi_push(const double* psi) {
    NeuroplastPsi& p = neuroplast_psi();
    p.start.push_back(p.size);
    double* v = p.vals + p.size;
    int32_t* c = p.cols + p.size;
    size_t m = 0;
    for (int n = 0; n < p.width; n++) {
        const double x = psi[n];
        v[m] = x;
        c[m] = n;
        m += x != 0.0;
    }
    p.size += m;
}

// Forget the steps recorded (the storage stays): the chunked engine's boundary, after the finished trial's
// gradients, so that the record holds one trial at a time (neuroplast/network/factorized.py).
inline void neuroplast_psi_clear() {
    NeuroplastPsi& p = neuroplast_psi();
    p.start.clear();
    p.size = 0;
}

// The number of steps recorded.
inline long neuroplast_psi_steps() { return (long)neuroplast_psi().start.size(); }

// Row t as a dense row (`row` holds `width` values; zeros where nothing was kept).
inline void neuroplast_psi_row(long t, double* row) {
    const NeuroplastPsi& p = neuroplast_psi();
    for (int n = 0; n < p.width; n++) row[n] = 0.0;
    const size_t end = t + 1 < (long)p.start.size() ? p.start[t + 1] : p.size;
    for (size_t k = p.start[t]; k < end; k++) row[p.cols[k]] = p.vals[k];
}

#endif  // NEUROPLAST_PSI_H
