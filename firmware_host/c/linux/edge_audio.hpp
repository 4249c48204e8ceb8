// 16-bit mono PCM into acom-edge: a WAV file, standard input or a capture command's output (e.g.
// `arecord -f S16_LE -r 16000 -c 1` on a Pi), WAV (header checked) or raw little-endian samples.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>

namespace acom {

class AudioSource {
public:
    // name: a WAV file's path, "-" for standard input, or "|COMMAND" to run COMMAND and read its output. The
    // audio must be at `sample_rate` Hz (a WAV header saying otherwise is an InputError naming the field).
    AudioSource(const std::string& name, int sample_rate);
    ~AudioSource();
    AudioSource(const AudioSource&) = delete;
    AudioSource& operator=(const AudioSource&) = delete;

    // Up to n samples into pcm, fewer only at the end of the audio; 0 at the end. Blocks on a live source.
    size_t read(int16_t* pcm, size_t n);
    // Samples in the whole audio when known (a WAV file with a real data size), else -1 (a live source).
    long long total() const { return total_; }
    const std::string& name() const { return name_; }
    // A capture command that exited with an error (checked after the end of its audio).
    bool failed() const { return failed_; }

private:
    void read_wav_header(int sample_rate);
    std::string name_;
    FILE* in_ = nullptr;
    bool pipe_ = false, failed_ = false, own_ = false;
    long long total_ = -1, left_ = -1;  // left_: samples still to read of a known data chunk
    uint8_t peek_[4] = {};              // the bytes read to tell WAV from raw
    size_t peeked_ = 0;
};

}  // namespace acom
