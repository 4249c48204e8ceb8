// The bundle's edge.pte in the ExecuTorch runtime (XNNPACK delegate, optimized CPU kernels): one window of
// audio in, the codes of its frames out; optionally an ETDump of per-operator times.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace acom {

class EdgeGraph {
public:
    // Loads `pte` and its method "forward" (InputError when the runtime refuses it). `etdump`: a path to write
    // the ETDump to at destruction, or empty for no profiling.
    EdgeGraph(const std::string& pte, int window, const std::string& etdump);
    ~EdgeGraph();
    // audio float [window] in [-1, 1) -> codes int32 [n_q * frames] (stage-major, as the graph's [1, n_q, T]);
    // frames set to T. std::runtime_error when the runtime fails.
    const int32_t* run(const float* audio, int* n_q, int* frames);
    double last_ms() const { return last_ms_; }

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    double last_ms_ = 0;
};

// Quiets the runtime's log below errors unless verbose (its info lines are not the user's business).
void set_runtime_log(bool verbose);

}  // namespace acom
