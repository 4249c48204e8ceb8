// What acom-edge reads of a bundle (manifest.json, as acom.runtime.manifest defines it): the graph's window, the
// stream's rates and codebooks, the edge.pte checked against its SHA-256, and the range coder's tables.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

extern "C" {
#include "acom_range.h"
}

namespace acom {

// A user's mistake (a bad bundle, option or input): acom-edge prints it and exits 2.
struct InputError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct EdgeBundle {
    std::string dir, board, task, pte;     // pte: the path of the verified edge.pte
    int sample_rate = 0;                   // Hz of the audio the graph takes
    double frame_rate = 0;                 // code frames per second
    int window = 0;                        // samples one run of the graph consumes
    int samples_per_code = 0;
    int n_q = 0;                           // stages the graph computes
    std::vector<uint32_t> codebook_sizes;  // K per stage
    uint8_t codebook_hash[32] = {};
};

// Reads DIR/manifest.json and checks edge.pte's SHA-256; InputError naming the file and field on any mismatch,
// or when the bundle was made for another board than `board` (empty: any Linux board).
EdgeBundle load_bundle(const std::string& dir, const std::string& board);

// The bundle's range-coder tables (edge_priors.bin, written by acom-export for Linux boards from
// priors.safetensors): one acom_prior per stage, pointing into `storage`.
struct PriorTables {
    std::vector<uint8_t> storage;
    std::vector<acom_prior> stages;
};
PriorTables load_priors(const EdgeBundle& b);

// The device's HMAC key from a keys file as acom serve reads it: JSON {"<device id>": "<key as hex>"}.
std::vector<uint8_t> load_key(const std::string& path, uint32_t device_id);

}  // namespace acom
