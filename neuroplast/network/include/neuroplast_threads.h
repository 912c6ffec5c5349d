// neuroplast: the threads of the code that neuroplast inserts into main.cpp (the factorized gradients,
// neuroplast/network/factorized.py), apart from Brian2's OpenMP threads of the simulation's code objects.
//
// A part is all the work on the elements it owns: no part reads what another writes, so the results are the
// same for every number of parts, and no lock nor barrier is needed until all are done.
#ifndef NEUROPLAST_THREADS_H
#define NEUROPLAST_THREADS_H

#include <algorithm>  // std::max; calloc, free and unique_ptr: what the code that runs the parts uses
#include <cstdlib>
#include <memory>
#include <system_error>
#include <thread>
#include <vector>

// Run part(0), ..., part(parts − 1), each in a thread of its own (part 0 in the caller's), and return when
// all are done.  Where no further thread can be started, the caller runs the parts that have none.
template <typename Part>
inline void neuroplast_parallel(int parts, const Part& part) {
    std::vector<std::thread> workers;
    int started = 1;
    try {
        for (; started < parts; started++) workers.emplace_back([&part, started] { part(started); });
    } catch (const std::system_error&) {
    }
    for (int w = started; w < parts; w++) part(w);
    part(0);
    for (std::thread& t : workers) t.join();
}

#endif  // NEUROPLAST_THREADS_H
