// neuroplast: monitors of every synapse of a cpp_standalone network, sized when the binary runs.
//
// A Brian2 StateMonitor compiles the number of elements it records into the program, and a network's number
// of synapses depends on its connectivity (read at launch, neuroplast_edges.h).  The synaptic monitors of
// neuroplast's compiled networks (the weights and gradients at trial boundaries and in-trial updates) are a
// run_regularly in the monitor's slot instead, `v = neuroplast_record(slot, row, v)` (neuroplast/network/
// records.py): the value goes unchanged into row `row` of the slot's record, at the synapse's index (Brian2
// appends `_vectorisation_idx`, the synapse's index in a run_regularly of synapses), and the record is
// the launch's results file, completed after the run.
#ifndef NEUROPLAST_RECORD_H
#define NEUROPLAST_RECORD_H

// Light includes only: every code object that records includes this header.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#define NEUROPLAST_RECORD_MAPPED 1
#endif

// A record is the file it will be: `path`.part, sized for the rows reserved and mapped (POSIX), so that the
// values go straight into the file's pages.  The launch's results folder is in RAM where there is one
// (network/cache.py): a record written at the end instead was a buffer zeroed when reserved (every row, also
// those a shorter launch never fills), then a copy of it all into the file (at 10⁶ synapses ≈ 3 % of a
// launch of three iterations, more of a shorter one).  Elsewhere the values are held in memory and written
// at the end.
struct NeuroplastRecord {
    double* values = NULL;       // rows x width, row-major (after the file's two int64 of header)
    int64_t* head = NULL;        // the file's header: rows, width (mapped)
    std::vector<double> buffer;  // the values where the file is not mapped
    std::string part;            // the file while it is written
    size_t bytes = 0;            // the mapping's length
    int fd = -1;
    long rows = 0;               // the rows reserved
    long width = 0;              // the number of synapses
    long filled = 0;             // the rows recorded (written by the synapse of index 0 alone)
};

// The records of the process (an inline function's static: one object in every translation unit).
inline std::vector<NeuroplastRecord>& neuroplast_records() {
    static std::vector<NeuroplastRecord> records;
    return records;
}

inline void neuroplast_record_fail(const char* what, const std::string& path) {
    std::fprintf(stderr, "neuroplast: cannot %s the record %s\n", what, path.c_str());
    std::exit(3);
}

// Reserves `rows` rows of `width` values for record `slot`, to be written to `path` (before the network
// runs, after the synapses exist), so that the synapses of every thread write into their own places.
// Values never recorded read 0.
inline void neuroplast_record_reserve(int slot, long rows, long width, const char* path) {
    std::vector<NeuroplastRecord>& records = neuroplast_records();
    if ((long)records.size() <= slot) {
        records.resize((size_t)slot + 1);
    }
    NeuroplastRecord& r = records[(size_t)slot];
    r.rows = rows;
    r.width = width;
    r.filled = 0;
    r.part = std::string(path) + ".part";
#ifdef NEUROPLAST_RECORD_MAPPED
    r.bytes = sizeof(int64_t) * 2 + sizeof(double) * (size_t)rows * (size_t)width;
    r.fd = open(r.part.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (r.fd < 0 || ftruncate(r.fd, (off_t)r.bytes) != 0) {
        neuroplast_record_fail("reserve", r.part);
    }
    void* map = mmap(NULL, r.bytes, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, 0);
    if (map == MAP_FAILED) {
        neuroplast_record_fail("map", r.part);
    }
    r.head = static_cast<int64_t*>(map);
    r.values = reinterpret_cast<double*>(r.head + 2);
#else
    r.buffer.assign((size_t)(rows * width), 0.0);
    r.values = r.buffer.empty() ? NULL : &r.buffer[0];
#endif
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

// Completes record `slot` as the file `path`: int64 rows, width, then rows x width doubles (the rows
// recorded).  It is `path`.part until then, and renamed onto `path`: the file under `path` is a new one,
// whole, at every launch, so that a reader that mapped the previous launch's file keeps reading it unchanged
// (records.py maps the records instead of copying them), and a killed launch never leaves half a record
// under `path`.
inline void neuroplast_record_write(int slot, const char* path) {
    NeuroplastRecord& r = neuroplast_records()[(size_t)slot];
    const int64_t head[2] = {(int64_t)r.filled, (int64_t)r.width};
    const size_t n = (size_t)(r.filled * r.width);
#ifdef NEUROPLAST_RECORD_MAPPED
    std::memcpy(r.head, head, sizeof(head));
    const off_t size = (off_t)(sizeof(head) + sizeof(double) * n);
    const bool ok = munmap(r.head, r.bytes) == 0 && ftruncate(r.fd, size) == 0;
    r.head = NULL;
    r.values = NULL;
    if (close(r.fd) != 0 || !ok) {
        neuroplast_record_fail("write", r.part);
    }
    r.fd = -1;
#else
    FILE* f = std::fopen(r.part.c_str(), "wb");
    const bool ok = f != NULL && std::fwrite(head, sizeof(int64_t), 2, f) == 2 &&
                    (n == 0 || std::fwrite(r.values, sizeof(double), n, f) == n);
    if (f == NULL || std::fclose(f) != 0 || !ok) {
        neuroplast_record_fail("write", r.part);
    }
#endif
    if (std::rename(r.part.c_str(), path) != 0) {
        neuroplast_record_fail("rename", std::string(path));
    }
}

#endif  // NEUROPLAST_RECORD_H
