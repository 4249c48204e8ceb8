// Audio input for acom-edge: WAV (RIFF, PCM or WAVE_FORMAT_EXTENSIBLE with PCM, 16-bit, mono) or raw s16le.
#include "edge_audio.hpp"

#include <cstring>

#include "edge_bundle.hpp"

namespace acom {
namespace {

uint32_t u32(const uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | static_cast<uint32_t>(p[3]) << 24; }
uint16_t u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }

}  // namespace

AudioSource::AudioSource(const std::string& name, int sample_rate) : name_(name) {
    if (name == "-") {
        in_ = stdin;
    } else if (!name.empty() && name[0] == '|') {
        in_ = popen(name.c_str() + 1, "r");
        pipe_ = own_ = in_ != nullptr;
        if (!in_) throw InputError(name.substr(1) + ": cannot run the capture command");
    } else {
        in_ = std::fopen(name.c_str(), "rb");
        own_ = in_ != nullptr;
        if (!in_) throw InputError(name + ": cannot open the audio file");
    }
    peeked_ = std::fread(peek_, 1, 4, in_);
    if (peeked_ == 4 && std::memcmp(peek_, "RIFF", 4) == 0) {
        peeked_ = 0;
        read_wav_header(sample_rate);
    } else if (name != "-" && name[0] != '|') {
        throw InputError(name + ": not a WAV file (RIFF header); convert it: sox IN -r " +
                         std::to_string(sample_rate) + " -c 1 -b 16 OUT.wav");
    }  // a live source without a header: raw 16-bit little-endian mono at the bundle's rate
}

AudioSource::~AudioSource() {
    if (!own_) return;
    if (pipe_) {
        pclose(in_);
    } else {
        std::fclose(in_);
    }
}

void AudioSource::read_wav_header(int sample_rate) {
    uint8_t head[8];
    if (std::fread(head, 1, 8, in_) != 8 || std::memcmp(head + 4, "WAVE", 4) != 0)  // RIFF size, "WAVE"
        throw InputError(name_ + ": a RIFF file that is not WAVE");
    bool fmt = false;
    while (std::fread(head, 1, 8, in_) == 8) {
        uint32_t size = u32(head + 4);
        if (std::memcmp(head, "fmt ", 4) == 0) {
            uint8_t f[40] = {};
            if (size < 16 || size > sizeof f || std::fread(f, 1, size, in_) != size)
                throw InputError(name_ + ": bad fmt chunk");
            uint16_t format = u16(f), channels = u16(f + 2), bits = u16(f + 14);
            uint32_t rate = u32(f + 4);
            if (format == 0xFFFE && size >= 26) format = u16(f + 24);  // WAVE_FORMAT_EXTENSIBLE: the sub-format
            if (format != 1 || bits != 16)
                throw InputError(name_ + ": WAV format " + std::to_string(format) + ", " + std::to_string(bits) +
                                 "-bit; acom-edge reads 16-bit PCM (sox IN -b 16 -e signed OUT.wav)");
            if (channels != 1)
                throw InputError(name_ + ": " + std::to_string(channels) + " channels; acom-edge reads mono (sox IN -c 1 OUT.wav)");
            if (static_cast<int>(rate) != sample_rate)
                throw InputError(name_ + ": " + std::to_string(rate) + " Hz; the bundle takes " +
                                 std::to_string(sample_rate) + " Hz (sox IN -r " + std::to_string(sample_rate) + " OUT.wav)");
            if (size % 2) std::fgetc(in_);
            fmt = true;
        } else if (std::memcmp(head, "data", 4) == 0) {
            if (!fmt) throw InputError(name_ + ": data chunk before the fmt chunk");
            // a streamed WAV (arecord to a pipe) says 0 or 0xFFFFFFFF: read to the end
            if (size != 0 && size != 0xFFFFFFFFu && !pipe_ && name_ != "-") total_ = left_ = size / 2;
            return;
        } else {
            for (uint32_t i = 0; i < size + (size & 1); i++) std::fgetc(in_);
        }
    }
    throw InputError(name_ + ": no data chunk");
}

size_t AudioSource::read(int16_t* pcm, size_t n) {
    if (left_ >= 0 && static_cast<long long>(n) > left_) n = static_cast<size_t>(left_);
    uint8_t* out = reinterpret_cast<uint8_t*>(pcm);
    size_t want = 2 * n, got = 0;
    while (peeked_ && got < want) {  // the first bytes of a raw stream, read to look for a header
        out[got++] = peek_[0];
        std::memmove(peek_, peek_ + 1, --peeked_);
    }
    while (in_ && got < want) {
        size_t r = std::fread(out + got, 1, want - got, in_);
        if (r == 0) break;
        got += r;
    }
    size_t samples = got / 2;  // little-endian samples: the host is (x86-64 and aarch64 Linux)
    if (left_ >= 0) left_ -= static_cast<long long>(samples);
    if (samples < n && pipe_ && own_) {
        failed_ = pclose(in_) != 0;
        own_ = false;
        in_ = nullptr;
    }
    return samples;
}

}  // namespace acom
