// neuroplast: the synapses of a cpp_standalone network, read when the binary runs (not when it is built).
//
// Brian2 compiles the index arrays of `Synapses.connect(i=..., j=...)` into the project (their sizes are
// constants of the generated code), so every new connectivity compiled again.  neuroplast's networks connect
// their projections with a generator instead (neuroplast/network/edges.py):
//
//     j = 'neuroplast_edge_other(T, i, k) for k in range(neuroplast_edge_count(T, i))'    (grouped by source)
//     i = 'neuroplast_edge_other(T, j, k) for k in range(neuroplast_edge_max(T)) if k < neuroplast_edge_count(T, j)'
//                                                                                         (grouped by target)
//
// whose table T is a file of the launch's results folder: the synapses come out in the order the file lists
// them, the order Brian2's own connect(i=..., j=...) gave them, and the program does not depend on them.
#ifndef NEUROPLAST_EDGES_H
#define NEUROPLAST_EDGES_H

// Light includes only: every code object that creates synapses includes this header.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

// One table: the synapses grouped by their outer neuron ("row"), in the order they are created.
struct NeuroplastEdges {
    std::vector<int32_t> start;  // rows + 1 offsets into `other`
    std::vector<int32_t> other;  // the neuron at the other end of each synapse
    int32_t most = 0;            // the largest number of synapses of a row
};

// The tables of the process (an inline function's static: one object in every translation unit).
inline std::vector<NeuroplastEdges>& neuroplast_edges() {
    static std::vector<NeuroplastEdges> tables;
    return tables;
}

// Reads table `table` from `path` (int32: rows, nnz, start[rows + 1], other[nnz]) before any synapse is
// created.  A missing file, or one that does not hold a table of `rows` rows with offsets from 0 to nnz and
// nothing after it, ends the launch with exit status 3 and a message naming the file.
inline void neuroplast_edges_load(int table, const char* path, long rows, long n_other) {
    std::vector<NeuroplastEdges>& tables = neuroplast_edges();
    if ((long)tables.size() <= table) {
        tables.resize((size_t)table + 1);
    }
    NeuroplastEdges& t = tables[(size_t)table];
    FILE* f = std::fopen(path, "rb");
    if (f == NULL) {
        std::fprintf(stderr, "neuroplast: cannot open the synapse table %s\n", path);
        std::exit(3);
    }
    int32_t head[2] = {-1, -1};
    bool ok = std::fread(head, sizeof(int32_t), 2, f) == 2 && head[0] == rows && head[1] >= 0;
    if (ok) {
        t.start.assign((size_t)rows + 1, 0);
        t.other.assign((size_t)head[1], 0);
        ok = std::fread(&t.start[0], sizeof(int32_t), t.start.size(), f) == t.start.size();
        ok = ok && (t.other.empty() || std::fread(&t.other[0], sizeof(int32_t), t.other.size(), f) == t.other.size());
        ok = ok && std::fgetc(f) == EOF && t.start[0] == 0 && t.start[(size_t)rows] == head[1];
        t.most = 0;
        for (long r = 0; ok && r < rows; r++) {
            const int32_t n = t.start[(size_t)r + 1] - t.start[(size_t)r];
            ok = n >= 0;
            t.most = n > t.most ? n : t.most;
        }
        for (size_t s = 0; ok && s < t.other.size(); s++) {
            ok = t.other[s] >= 0 && t.other[s] < n_other;
        }
    }
    std::fclose(f);
    if (!ok) {
        std::fprintf(stderr, "neuroplast: %s is not a synapse table of %ld rows into %ld neurons\n", path, rows,
                     n_other);
        std::exit(3);
    }
}

// The largest number of synapses of a row of table `table`.
inline int32_t neuroplast_edge_max(int32_t table) {
    return neuroplast_edges()[(size_t)table].most;
}

// The number of synapses of row `row` (an outer neuron) of table `table`.
inline int32_t neuroplast_edge_count(int32_t table, int32_t row) {
    const NeuroplastEdges& t = neuroplast_edges()[(size_t)table];
    return t.start[(size_t)row + 1] - t.start[(size_t)row];
}

// The other end of the k-th synapse of row `row` of table `table`; 0 (a neuron that exists) for a k past the
// row's synapses, which the generator of a table grouped by target then skips (see neuroplast/network/edges.py).
inline int32_t neuroplast_edge_other(int32_t table, int32_t row, int32_t k) {
    const NeuroplastEdges& t = neuroplast_edges()[(size_t)table];
    const int32_t at = t.start[(size_t)row] + k;
    return at < t.start[(size_t)row + 1] ? t.other[(size_t)at] : 0;
}

#endif  // NEUROPLAST_EDGES_H
