// neuroplast: the input spikes of a cpp_standalone launch, read from a byte table instead of a TimedArray
// (neuroplast/network/builder.py writes the table into the launch's results folder; docs/model.md §9).
//
// The table holds steps x width bytes, row t = the 0/1 inputs of step t of every input neuron of every copy
// (one byte instead of the TimedArray's eight per value: 2.9 MB instead of 23 MB for a batch of 32
// evidence trials).  neuroplast_input_spike(i, step) is what X_input(t, i) was: the same 0.0 or 1.0.
#ifndef NEUROPLAST_INPUT_H
#define NEUROPLAST_INPUT_H

// Light includes only: every code object of a cpp_standalone network includes this header.
#include <cstdio>
#include <cstdlib>
#include <vector>

struct NeuroplastInput {
    std::vector<unsigned char> table;
    long steps = 0;
    long width = 0;
};

// The one table of the process (an inline function's static: one object in every translation unit).
inline NeuroplastInput& neuroplast_input() {
    static NeuroplastInput input;
    return input;
}

// Reads the table before the network runs; a missing file or one of the wrong size ends the launch with
// exit status 3 and a message naming the file (the Python side turns a failed launch into an error).
inline void neuroplast_input_load(const char* path, long steps, long width) {
    NeuroplastInput& in = neuroplast_input();
    in.steps = steps;
    in.width = width;
    in.table.assign((size_t)(steps * width), 0);
    FILE* f = std::fopen(path, "rb");
    if (f == NULL) {
        std::fprintf(stderr, "neuroplast: cannot open the input table %s\n", path);
        std::exit(3);
    }
    const size_t got = in.table.empty() ? 0 : std::fread(&in.table[0], 1, in.table.size(), f);
    const bool longer = std::fgetc(f) != EOF;
    std::fclose(f);
    if (got != in.table.size() || longer) {
        std::fprintf(stderr, "neuroplast: the input table %s does not hold %ld x %ld bytes\n", path, steps, width);
        std::exit(3);
    }
}

// Input neuron i (of all copies) at step `step`: 1.0 if it spikes, else 0.0.
inline double neuroplast_input_spike(int i, long step) {
    const NeuroplastInput& in = neuroplast_input();
    return in.table[(size_t)(step * in.width + i)] ? 1.0 : 0.0;
}

#endif  // NEUROPLAST_INPUT_H
