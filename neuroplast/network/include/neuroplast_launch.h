// neuroplast: the duration of a cpp_standalone launch, chosen when the binary runs (not when it is built).
//
// neuroplast's device (neuroplast/network/engine.py) compiles `net.run(neuroplast_run_duration(file, D))`
// instead of `net.run(D)`: a network built for up to K trials per launch runs fewer when the launch's results
// folder holds a file `duration` with the time to simulate (seconds, a decimal that round-trips the double
// Python wrote), so that the number of iterations of a run never changes the compiled program.
#ifndef NEUROPLAST_LAUNCH_H
#define NEUROPLAST_LAUNCH_H

// Light includes only: every code object of a cpp_standalone network includes this header.
#include <cstdio>
#include <cstdlib>

// The duration of this launch: the number in `path` if the file exists, else the compiled duration.  A file
// that does not hold one number in (0, compiled] ends the launch with exit status 3 and a message naming it.
inline double neuroplast_run_duration(const char* path, double compiled) {
    FILE* f = std::fopen(path, "r");
    if (f == NULL) {
        return compiled;
    }
    double duration = 0.0;
    const int read = std::fscanf(f, "%lf", &duration);
    std::fclose(f);
    if (read != 1 || !(duration > 0.0) || duration > compiled) {
        std::fprintf(stderr, "neuroplast: %s does not hold a duration in (0, %.17g] s\n", path, compiled);
        std::exit(3);
    }
    return duration;
}

#endif  // NEUROPLAST_LAUNCH_H
