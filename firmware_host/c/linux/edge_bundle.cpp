// Reading a bundle for acom-edge: manifest.json (nlohmann/json), edge.pte's hash, the range coder's tables.
#include "edge_bundle.hpp"

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

extern "C" {
#include "acom_wire.h"
}

namespace acom {
namespace {

using nlohmann::json;

std::vector<uint8_t> read_file(const std::string& path, const char* what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InputError(path + ": cannot read " + what);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

bool parse_hex(const std::string& text, std::vector<uint8_t>& out) {
    if (text.size() % 2) return false;
    out.clear();
    for (size_t i = 0; i < text.size(); i += 2) {
        char* end = nullptr;
        std::string two = text.substr(i, 2);
        long v = std::strtol(two.c_str(), &end, 16);
        if (end != two.c_str() + 2) return false;
        out.push_back(static_cast<uint8_t>(v));
    }
    return true;
}

// manifest[key] as T, or an InputError naming the field and what was expected.
template <typename T>
T field(const json& m, const std::string& where, const char* key, const char* expected) {
    if (!m.contains(key)) throw InputError(where + ": no field '" + key + "' (expected " + expected + ")");
    try {
        return m.at(key).get<T>();
    } catch (const json::exception&) {
        throw InputError(where + ": field '" + key + "' is " + m.at(key).dump() + " (expected " + expected + ")");
    }
}

std::string hex(const uint8_t* data, size_t n) {
    static const char* digits = "0123456789abcdef";
    std::string s;
    for (size_t i = 0; i < n; i++) s += {digits[data[i] >> 4], digits[data[i] & 15]};
    return s;
}

}  // namespace

EdgeBundle load_bundle(const std::string& dir, const std::string& board) {
    EdgeBundle b;
    b.dir = dir;
    std::string where = dir + "/manifest.json";
    auto raw = read_file(where, "the bundle's manifest (is it a folder written by acom-export?)");
    json m = json::parse(raw.begin(), raw.end(), nullptr, false);
    if (m.is_discarded() || !m.is_object()) throw InputError(where + ": not a JSON object");
    if (field<std::string>(m, where, "kind", "\"acom-bundle\"") != "acom-bundle")
        throw InputError(where + ": field 'kind' is not \"acom-bundle\"");
    b.board = field<std::string>(m, where, "board", "a board name");
    if (!board.empty() && b.board != board)
        throw InputError(where + ": a bundle for board " + b.board + ", not " + board +
                         " (export one with acom-export --board " + board + ")");
    b.task = field<std::string>(m, where, "task", "a task name");
    b.sample_rate = field<int>(m, where, "sample_rate", "Hz");
    b.frame_rate = field<double>(m, where, "frame_rate", "frames per second");
    b.n_q = field<int>(m, where, "n_q", "stages");
    b.codebook_sizes = field<std::vector<uint32_t>>(m, where, "codebook_sizes", "a list of codebook sizes");
    auto graph = field<json>(m, where, "graph", "the exported graph's shapes");
    b.window = field<int>(graph, where + " graph", "window_samples", "samples per run of the graph");
    auto frontend = field<json>(m, where, "frontend", "the front end's settings");
    if (field<std::string>(frontend, where + " frontend", "runs_in", "graph or firmware") != "graph")
        throw InputError(where + ": this bundle's graph takes features the firmware computes (board " + b.board +
                         "); acom-edge runs bundles whose graph takes the waveform (rpi4, rpi5)");
    if (b.sample_rate <= 0 || b.frame_rate <= 0 || b.window <= 0 || b.n_q < 1 ||
        b.n_q > static_cast<int>(b.codebook_sizes.size()))
        throw InputError(where + ": sample_rate, frame_rate, graph.window_samples, n_q or codebook_sizes out of range");
    b.samples_per_code = static_cast<int>(std::lround(b.sample_rate / b.frame_rate));
    std::vector<uint8_t> hash;
    if (!parse_hex(field<std::string>(m, where, "codebook_hash", "64 hex digits"), hash) || hash.size() != 32)
        throw InputError(where + ": field 'codebook_hash' is not 64 hex digits");
    std::memcpy(b.codebook_hash, hash.data(), 32);

    // edge.pte as exported: its SHA-256 against the manifest's files entry (a tampered or swapped graph is refused)
    b.pte = dir + "/edge.pte";
    auto files = field<json>(m, where, "files", "the bundle's files and their hashes");
    if (!files.contains("edge.pte"))
        throw InputError(where + ": no edge.pte in 'files' (export the bundle with the executorch-xnnpack runtime)");
    auto want = field<std::string>(files.at("edge.pte"), where + " files['edge.pte']", "sha256", "64 hex digits");
    auto pte = read_file(b.pte, "the edge graph");
    uint8_t got[32];
    acom_sha256(pte.data(), pte.size(), got);
    if (hex(got, 32) != want)
        throw InputError(b.pte + ": SHA-256 " + hex(got, 32) + " is not the manifest's " + want +
                         " (the file was changed after export: export the bundle again)");
    return b;
}

PriorTables load_priors(const EdgeBundle& b) {
    PriorTables t;
    std::string path = b.dir + "/edge_priors.bin";
    t.storage = read_file(path, "the range coder's tables (export the bundle again, or send bit-packed codes)");
    const uint8_t* base = t.storage.data();
    size_t size = t.storage.size(), pos = 16;
    auto bad = [&](const char* what) { return InputError(path + ": " + what + " (export the bundle again)"); };
    if (size < 16 || std::memcmp(base, "ACOMPRI1", 8) != 0) throw bad("not an acom priors table (magic)");
    uint32_t n_q;
    std::memcpy(&n_q, base + 8, 4);
    if (n_q < static_cast<uint32_t>(b.n_q)) throw bad("fewer stages than the bundle's n_q");
    auto take = [&](size_t bytes) {
        if (pos + bytes > size) throw bad("truncated");
        const uint8_t* p = base + pos;
        pos += (bytes + 7) / 8 * 8;  // every array starts 8-byte aligned (the doubles are read in place)
        return p;
    };
    for (uint32_t s = 0; s < n_q; s++) {
        uint32_t km[2];
        std::memcpy(km, take(8), 8);
        acom_prior p;
        p.k = km[0];
        if (p.k != b.codebook_sizes[s]) throw bad("a stage's codebook size is not the manifest's");
        p.p_uni = reinterpret_cast<const double*>(take(8 * p.k));
        p.ctx_types = reinterpret_cast<const double*>(take(8 * p.k));
        p.ctx_denom = reinterpret_cast<const double*>(take(8 * p.k));
        p.indptr = reinterpret_cast<const uint32_t*>(take(4 * (p.k + 1)));
        p.count = reinterpret_cast<const uint32_t*>(take(4 * km[1]));
        p.cur = reinterpret_cast<const uint16_t*>(take(2 * km[1]));
        if (p.indptr[p.k] != km[1]) throw bad("a stage's pair table is inconsistent");
        t.stages.push_back(p);
    }
    return t;
}

std::vector<uint8_t> load_key(const std::string& path, uint32_t device_id) {
    auto raw = read_file(path, "the keys file");
    json keys = json::parse(raw.begin(), raw.end(), nullptr, false);
    std::string id = std::to_string(device_id);
    if (keys.is_discarded() || !keys.is_object())
        throw InputError(path + ": expected JSON {\"" + id + "\": \"<key as hex>\"} (acom serve's --keys format)");
    if (!keys.contains(id) || !keys.at(id).is_string())
        throw InputError(path + ": no key for device " + id + " (give --device-id, or add the entry)");
    std::vector<uint8_t> key;
    if (!parse_hex(keys.at(id).get<std::string>(), key) || key.size() < 16)
        throw InputError(path + ": entry \"" + id + "\": expected a key of at least 16 bytes in hex");
    return key;
}

}  // namespace acom
