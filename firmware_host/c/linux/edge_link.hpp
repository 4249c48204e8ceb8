// Where acom-edge's packets go: UDP datagrams to HOST:PORT, or COBS frames on a serial port (termios, raw).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace acom {

class Link {
public:
    // spec: "udp:HOST:PORT" or "serial:/dev/ttyX[@BAUD]" (default 115200). InputError when it cannot be set up.
    explicit Link(const std::string& spec);
    ~Link();
    Link(const Link&) = delete;
    Link& operator=(const Link&) = delete;
    // Sends one packet; a failed write is retried with back-off (0.1 s doubling to 1.6 s; a serial port is opened
    // again) and, when every retry fails, a std::runtime_error saying why.
    void send(const uint8_t* packet, size_t len);
    const std::string& spec() const { return spec_; }

private:
    bool try_send(const uint8_t* packet, size_t len);
    void open_serial();
    std::string spec_, path_;
    int fd_ = -1, baud_ = 115200;
    bool serial_ = false;
};

}  // namespace acom
