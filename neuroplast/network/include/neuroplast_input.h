// neuroplast: the input spikes of a cpp_standalone launch, read from a byte table instead of a TimedArray
// (neuroplast/network/builder.py writes the table into the launch's results folder; docs/model.md §9).
//
// The table holds steps x width bytes, row t = the 0/1 inputs of step t of every input neuron of every copy
// (one byte instead of the TimedArray's eight per value: 2.9 MB instead of 23 MB for a batch of 32
// evidence trials).  neuroplast_input_spike(i, step) is what X_input(t, i) was: the same 0.0 or 1.0.
#ifndef NEUROPLAST_INPUT_H
#define NEUROPLAST_INPUT_H

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
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
inline void neuroplast_input_load(const std::string& path, long steps, long width) {
    NeuroplastInput& in = neuroplast_input();
    in.steps = steps;
    in.width = width;
    in.table.assign((size_t)(steps * width), 0);
    FILE* f = std::fopen(path.c_str(), "rb");
    if (f == NULL) {
        std::cerr << "neuroplast: cannot open the input table " << path << std::endl;
        std::exit(3);
    }
    const size_t got = in.table.empty() ? 0 : std::fread(&in.table[0], 1, in.table.size(), f);
    const bool longer = std::fgetc(f) != EOF;
    std::fclose(f);
    if (got != in.table.size() || longer) {
        std::cerr << "neuroplast: the input table " << path << " does not hold " << steps << " x " << width
                  << " bytes" << std::endl;
        std::exit(3);
    }
}

// Input neuron i (of all copies) at step `step`: 1.0 if it spikes, else 0.0.
inline double neuroplast_input_spike(int i, long step) {
    const NeuroplastInput& in = neuroplast_input();
    return in.table[(size_t)(step * in.width + i)] ? 1.0 : 0.0;
}

#endif  // NEUROPLAST_INPUT_H
