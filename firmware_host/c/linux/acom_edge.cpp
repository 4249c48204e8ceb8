// acom-edge: the device program of a Linux board (Raspberry Pi 4/5). Audio (WAV files, standard input or a
// capture command) -> the bundle's edge.pte in the ExecuTorch runtime, one window at a time -> packets of codes
// (the device's C wire code: bit-packed or range-coded, CRC or HMAC tag) -> UDP datagrams or serial frames.
// One stream per input; its last packet is flagged end of stream. Prints one JSON line per stream.
// Exit codes: 0 sent, 1 the runtime or the link failed, 2 bad input (a message says what was allowed),
// 130 interrupted (the stream in progress is ended first).
#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "edge_audio.hpp"
#include "edge_bundle.hpp"
#include "edge_graph.hpp"
#include "edge_link.hpp"

extern "C" {
#include "acom_wire.h"
}

#ifndef ACOM_BOARD
#define ACOM_BOARD ""  // built for this machine: any Linux board's bundle
#endif

namespace acom {
namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

const char* USAGE =
    "usage: acom-edge --bundle DIR (--udp HOST:PORT | --serial PATH[@BAUD]) [options] AUDIO...\n"
    "\n"
    "Run a bundle's edge.pte on audio and send the codes as acom packets (docs/wire.md), one stream per AUDIO.\n"
    "AUDIO: a WAV file (16-bit mono at the bundle's rate), - for standard input (WAV or raw s16le), or\n"
    "       |COMMAND to read a capture command's output, e.g. \"|arecord -q -f S16_LE -r 16000 -c 1 -t raw\"\n"
    "\n"
    "options:\n"
    "  --bundle DIR         bundle folder written by acom-export for this board (manifest.json, edge.pte)\n"
    "  --udp HOST:PORT      send UDP datagrams there (acom serve --udp)\n"
    "  --serial PATH[@BAUD] write COBS frames to this serial port (default 115200 baud; acom serve --serial)\n"
    "  --device-id N        device id in the packets (default 1)\n"
    "  --first-stream N     stream id of the first AUDIO, then +1 each (default 0)\n"
    "  --packet-s S         seconds of audio per packet (default 1)\n"
    "  --full-every N       one packet in N (and the first and last) carries the full 32-byte header (default 8)\n"
    "  --keys FILE          sign packets with this device's key from a keys file (acom serve --keys format)\n"
    "  --tag-bytes N        with --keys: bytes of HMAC tag, 4, 8 or 16 (default 8)\n"
    "  --entropy            range-code the codes under the bundle's priors (edge_priors.bin)\n"
    "  --profile FILE       write an ETDump of per-operator times (executorch devtools Inspector reads it)\n"
    "  --print-codes        add each stream's codes to its JSON line\n"
    "  --verbose            the runtime's log lines too\n"
    "  --help               this text\n"
    "\n"
    "Prints one JSON line per stream. Exit codes: 0 sent, 1 runtime or link failure, 2 bad input, 130 interrupted.\n";

struct Options {
    std::string bundle, link, keys, profile;
    std::vector<std::string> audio;
    long device_id = 1, first_stream = 0, full_every = 8, tag_bytes = 8;
    double packet_s = 1.0;
    bool entropy = false, print_codes = false, verbose = false;
};

long number(const std::string& flag, const char* text, long low, long high) {
    char* end = nullptr;
    long v = std::strtol(text, &end, 10);
    if (!*text || *end || v < low || v > high)
        throw InputError(flag + " " + text + ": expected a whole number " + std::to_string(low) + ".." +
                         std::to_string(high));
    return v;
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc) throw InputError(a + ": needs a value (acom-edge --help)");
            return argv[++i];
        };
        if (a == "--help" || a == "-h") {
            std::fputs(USAGE, stdout);
            std::exit(0);
        } else if (a == "--bundle") { o.bundle = value();
        } else if (a == "--udp") { o.link = std::string("udp:") + value();
        } else if (a == "--serial") { o.link = std::string("serial:") + value();
        } else if (a == "--device-id") { o.device_id = number(a, value(), 0, 4294967295L);
        } else if (a == "--first-stream") { o.first_stream = number(a, value(), 0, 65535);
        } else if (a == "--full-every") { o.full_every = number(a, value(), 1, 1000000);
        } else if (a == "--tag-bytes") {
            o.tag_bytes = number(a, value(), 4, 16);
            if (o.tag_bytes != 4 && o.tag_bytes != 8 && o.tag_bytes != 16)
                throw InputError("--tag-bytes " + std::to_string(o.tag_bytes) + ": one of 4, 8, 16");
        } else if (a == "--packet-s") {
            char* end = nullptr;
            const char* text = value();
            o.packet_s = std::strtod(text, &end);
            if (*end || !(o.packet_s > 0 && o.packet_s <= 60))
                throw InputError(std::string("--packet-s ") + text + ": expected seconds, more than 0, at most 60");
        } else if (a == "--keys") { o.keys = value();
        } else if (a == "--profile") { o.profile = value();
        } else if (a == "--entropy") { o.entropy = true;
        } else if (a == "--print-codes") { o.print_codes = true;
        } else if (a == "--verbose") { o.verbose = true;
        } else if (a.size() > 1 && a[0] == '-' && a[1] == '-') {
            throw InputError(a + ": unknown option (acom-edge --help)");
        } else {
            o.audio.push_back(a);
        }
    }
    if (o.bundle.empty()) throw InputError("--bundle: required (acom-edge --help)");
    if (o.link.empty()) throw InputError("--udp or --serial: required, where the packets go (acom-edge --help)");
    if (o.audio.empty()) throw InputError("AUDIO: give at least one WAV file, - or |COMMAND (acom-edge --help)");
    return o;
}

// One stream: windows of audio through the graph, codes gathered into packets and sent as they fill.
struct StreamRun {
    const EdgeBundle& b;
    EdgeGraph& graph;
    Link& link;
    acom_stream s;
    std::vector<uint16_t> held;  // [n_q][cap]: frames waiting for a packet
    int cap = 0, count = 0;
    long long bytes = 0, frames = 0;
    std::vector<double> graph_ms;
    std::vector<std::vector<int>> all_codes;
    uint8_t packet[ACOM_MAX_PACKET];

    void send(int n, bool end) {
        int len = acom_stream_packet(&s, held.data(), b.n_q, n, cap, end ? 1 : 0, packet, sizeof packet);
        if (len < 0) throw std::runtime_error("the wire code refused a packet (error " + std::to_string(len) + ")");
        link.send(packet, static_cast<size_t>(len));
        bytes += len;
        for (int q = 0; q < b.n_q; q++)
            std::copy(held.begin() + q * cap + n, held.begin() + q * cap + count, held.begin() + q * cap);
        count -= n;
    }

    // Runs the graph on one window holding `real` samples of audio (the rest zeros) and sends what is complete;
    // `last`: the audio ends with this window (its remaining frames end the stream).
    void window(const float* audio, long long real, bool last, bool keep_codes) {
        int n_q = 0, t = 0;
        const int32_t* codes = graph.run(audio, &n_q, &t);
        graph_ms.push_back(graph.last_ms());
        if (n_q != b.n_q) throw std::runtime_error("the graph computed " + std::to_string(n_q) + " stages, the manifest says " + std::to_string(b.n_q));
        int n = static_cast<int>(std::min<long long>(t, (real + b.samples_per_code - 1) / b.samples_per_code));
        if (count + n > cap) throw std::runtime_error("more frames held than a packet and a window");
        for (int q = 0; q < n_q; q++)
            for (int i = 0; i < n; i++) held[q * cap + count + i] = static_cast<uint16_t>(codes[q * t + i]);
        if (keep_codes)
            for (int q = 0; q < n_q; q++) all_codes[q].insert(all_codes[q].end(), codes + q * t, codes + q * t + n);
        count += n;
        frames += n;
        int fpp = s.frames_per_packet;
        while (count > fpp || (count == fpp && !last)) send(fpp, false);
        if (last) send(count, true);
    }
};

std::string json_codes(const std::vector<std::vector<int>>& codes) {
    std::string out = "[";
    for (size_t q = 0; q < codes.size(); q++) {
        out += q ? ",[" : "[";
        for (size_t i = 0; i < codes[q].size(); i++) out += (i ? "," : "") + std::to_string(codes[q][i]);
        out += "]";
    }
    return out + "]";
}

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        if (static_cast<unsigned char>(c) < 0x20) continue;
        out += c;
    }
    return out + "\"";
}

int run(const Options& o) {
    EdgeBundle b = load_bundle(o.bundle, ACOM_BOARD);
    PriorTables priors;
    if (o.entropy) priors = load_priors(b);
    std::vector<uint8_t> key;
    if (!o.keys.empty()) key = load_key(o.keys, static_cast<uint32_t>(o.device_id));
    long fpp = std::max(1L, std::lround(o.packet_s * b.frame_rate));
    if (fpp > 4096) throw InputError("--packet-s " + std::to_string(o.packet_s) + ": over 4096 frames per packet");
    set_runtime_log(o.verbose);
    EdgeGraph graph(b.pte, b.window, o.profile);
    Link link(o.link);
    std::vector<int16_t> pcm(static_cast<size_t>(b.window));
    std::vector<float> audio(static_cast<size_t>(b.window));
    int per_window = b.window / b.samples_per_code + 1;
    for (size_t i = 0; i < o.audio.size() && !g_stop; i++) {
        AudioSource in(o.audio[i], b.sample_rate);
        StreamRun r{b, graph, link, {}, {}, static_cast<int>(fpp) + per_window, 0, 0, 0, {}, {}, {}};
        r.s.device_id = static_cast<uint32_t>(o.device_id);
        r.s.stream_id = static_cast<uint16_t>(o.first_stream + static_cast<long>(i));
        r.s.codebook_id = acom_codebook_id(b.codebook_hash);
        r.s.codebook_sizes = b.codebook_sizes.data();
        r.s.priors = o.entropy ? priors.stages.data() : nullptr;
        r.s.key = key.empty() ? nullptr : key.data();
        r.s.key_len = key.size();
        r.s.tag_len = static_cast<uint8_t>(o.tag_bytes);
        r.s.frames_per_packet = static_cast<uint16_t>(fpp);
        r.s.n_q = static_cast<uint8_t>(b.n_q);
        r.s.full_every = static_cast<uint32_t>(o.full_every);
        r.held.assign(static_cast<size_t>(b.n_q * r.cap), 0);
        r.all_codes.assign(static_cast<size_t>(b.n_q), {});
        long long seen = 0, total = in.total();
        for (bool last = false; !last;) {
            size_t got = 0;
            while (got < pcm.size() && !g_stop) {  // one window, as a board captures it
                size_t n = in.read(pcm.data() + got, pcm.size() - got);
                if (n == 0) break;
                got += n;
            }
            seen += static_cast<long long>(got);
            // the end: a short window, a known length reached, or a stop; a live source whose audio ends on a
            // window's edge ends its stream with a packet of no frames
            last = got < pcm.size() || (total >= 0 && seen >= total) || g_stop;
            if (got == 0 && seen > 0) {
                r.send(r.count, true);
                break;
            }
            for (size_t k = 0; k < pcm.size(); k++) audio[k] = k < got ? pcm[k] / 32768.0f : 0.0f;
            r.window(audio.data(), static_cast<long long>(got), last, o.print_codes);
        }
        if (in.failed()) throw InputError(o.audio[i].substr(1) + ": the capture command failed");
        std::vector<double> ms = r.graph_ms;
        std::sort(ms.begin(), ms.end());
        double seconds = std::max(r.frames / b.frame_rate, 1e-9);
        std::printf("{\"file\": %s, \"stream\": %u, \"frames\": %lld, \"n_q\": %d, \"packets\": %u, \"bytes\": %lld, "
                    "\"payload\": \"%s\", \"payload_bps\": %.1f, \"bps_on_wire\": %.1f, \"windows\": %zu, "
                    "\"graph_ms_median\": %.2f, \"sender\": \"acom-edge\", \"board\": \"%s\"%s%s}\n",
                    json_string(o.audio[i]).c_str(), r.s.stream_id, r.frames, b.n_q, r.s.index, r.bytes,
                    o.entropy ? "entropy" : "packed", 8.0 * r.s.payload_bytes / seconds, 8.0 * r.bytes / seconds,
                    ms.size(), ms.empty() ? 0.0 : ms[ms.size() / 2], b.board.c_str(),
                    o.print_codes ? ", \"codes\": " : "", o.print_codes ? json_codes(r.all_codes).c_str() : "");
        std::fflush(stdout);
    }
    return g_stop ? 130 : 0;
}

}  // namespace
}  // namespace acom

int main(int argc, char** argv) {
    struct sigaction sa{};
    sa.sa_handler = acom::on_signal;  // no SA_RESTART: a blocked read returns, and the stream is ended
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
    try {
        return acom::run(acom::parse(argc, argv));
    } catch (const acom::InputError& e) {
        std::fprintf(stderr, "acom-edge: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "acom-edge: %s\n", e.what());
        return 1;
    }
}
