// neuroplast: monitors of every synapse of a cpp_standalone network, sized when the binary runs.
//
// A Brian2 StateMonitor compiles the number of elements it records into the program, and a network's number
// of synapses depends on its connectivity (read at launch, neuroplast_edges.h).  The synaptic monitors of
// neuroplast's compiled networks (the weights and gradients at trial boundaries and in-trial updates) are a
// run_regularly in the monitor's slot instead, `v = neuroplast_record(slot, row, v)` (neuroplast/network/
// records.py): the value goes unchanged into row `row` of the slot's record, at the synapse's index (Brian2
// appends `_vectorisation_idx`, the synapse's index in a run_regularly of synapses), and the record is
// written into the launch's results folder after the run.
#ifndef NEUROPLAST_RECORD_H
#define NEUROPLAST_RECORD_H

// Light includes only: every code object that records includes this header.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

struct NeuroplastRecord {
    std::vector<double> values;  // rows x width, row-major
    long rows = 0;               // the rows reserved
    long width = 0;              // the number of synapses
    long filled = 0;             // the rows recorded (written by the synapse of index 0 alone)
};

// The records of the process (an inline function's static: one object in every translation unit).
inline std::vector<NeuroplastRecord>& neuroplast_records() {
    static std::vector<NeuroplastRecord> records;
    return records;
}

// Reserves `rows` rows of `width` values for record `slot` (before the network runs, after the synapses
// exist), so that the synapses of every thread write into their own places.
inline void neuroplast_record_reserve(int slot, long rows, long width) {
    std::vector<NeuroplastRecord>& records = neuroplast_records();
    if ((long)records.size() <= slot) {
        records.resize((size_t)slot + 1);
    }
    NeuroplastRecord& r = records[(size_t)slot];
    r.rows = rows;
    r.width = width;
    r.filled = 0;
    r.values.assign((size_t)(rows * width), 0.0);
}

// Records `value` of synapse `idx` in row `row` of record `slot` and returns it unchanged.  A row past the
// reserved ones ends the launch with exit status 3 and a message.
inline double neuroplast_record(int slot, int row, double value, size_t idx) {
    NeuroplastRecord& r = neuroplast_records()[(size_t)slot];
    if (row < 0 || row >= r.rows || (long)idx >= r.width) {
        std::fprintf(stderr, "neuroplast: record %d has %ld rows of %ld values, not row %d, value %ld\n", slot,
                     r.rows, r.width, row, (long)idx);
        std::exit(3);
    }
    r.values[(size_t)row * (size_t)r.width + idx] = value;
    if (idx == 0 && row + 1 > r.filled) {
        r.filled = row + 1;
    }
    return value;
}

// Writes the recorded rows of record `slot` to `path`: int64 rows, width, then rows x width doubles.  Written
// to `path`.part and renamed onto `path`: the file under `path` is a new one, whole, at every launch, so
// that a reader that mapped the previous launch's file keeps reading it unchanged (records.py maps the
// records instead of copying them), and a killed launch never leaves half a record under `path`.
inline void neuroplast_record_write(int slot, const char* path) {
    const NeuroplastRecord& r = neuroplast_records()[(size_t)slot];
    const std::string part = std::string(path) + ".part";
    FILE* f = std::fopen(part.c_str(), "wb");
    const int64_t head[2] = {(int64_t)r.filled, (int64_t)r.width};
    const size_t n = (size_t)(r.filled * r.width);
    const bool ok = f != NULL && std::fwrite(head, sizeof(int64_t), 2, f) == 2 &&
                    (n == 0 || std::fwrite(&r.values[0], sizeof(double), n, f) == n);
    if (f == NULL || std::fclose(f) != 0 || !ok || std::rename(part.c_str(), path) != 0) {
        std::fprintf(stderr, "neuroplast: cannot write the record %s\n", path);
        std::exit(3);
    }
}

#endif  // NEUROPLAST_RECORD_H
