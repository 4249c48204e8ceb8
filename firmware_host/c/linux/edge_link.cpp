// UDP and serial links for acom-edge.
#include "edge_link.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <stdexcept>
#include <sys/socket.h>
#include <termios.h>
#include <thread>
#include <unistd.h>

#include "edge_bundle.hpp"

extern "C" {
#include "acom_wire.h"
}

namespace acom {
namespace {

speed_t speed_of(int baud) {
    switch (baud) {
        case 9600: return B9600;
        case 19200: return B19200;
        case 38400: return B38400;
        case 57600: return B57600;
        case 115200: return B115200;
        case 230400: return B230400;
        case 460800: return B460800;
        case 921600: return B921600;
        default: throw InputError("serial baud rate " + std::to_string(baud) +
                                  ": one of 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600");
    }
}

}  // namespace

Link::Link(const std::string& spec) : spec_(spec) {
    if (spec.rfind("serial:", 0) == 0) {
        serial_ = true;
        path_ = spec.substr(7);
        auto at = path_.rfind('@');
        if (at != std::string::npos) {
            baud_ = std::atoi(path_.c_str() + at + 1);
            path_.resize(at);
        }
        speed_of(baud_);
        open_serial();
        return;
    }
    if (spec.rfind("udp:", 0) != 0) throw InputError("link " + spec + ": expected udp:HOST:PORT or serial:PATH[@BAUD]");
    std::string hostport = spec.substr(4);
    auto colon = hostport.rfind(':');
    if (colon == std::string::npos) throw InputError("--udp " + hostport + ": expected HOST:PORT");
    std::string host = hostport.substr(0, colon), port = hostport.substr(colon + 1);
    addrinfo hints{}, *res = nullptr;
    hints.ai_socktype = SOCK_DGRAM;
    if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || !res)
        throw InputError("--udp " + hostport + ": cannot resolve the host or port");
    fd_ = socket(res->ai_family, SOCK_DGRAM, 0);
    // connect: the datagrams' destination is fixed, and the kernel reports a closed port as ECONNREFUSED
    bool ok = fd_ >= 0 && connect(fd_, res->ai_addr, res->ai_addrlen) == 0;
    freeaddrinfo(res);
    if (!ok) throw InputError("--udp " + hostport + ": " + std::strerror(errno));
}

Link::~Link() {
    if (fd_ >= 0) close(fd_);
}

void Link::open_serial() {
    if (fd_ >= 0) close(fd_);
    fd_ = open(path_.c_str(), O_RDWR | O_NOCTTY);
    if (fd_ < 0) throw InputError("--serial " + path_ + ": " + std::strerror(errno));
    termios t{};
    if (tcgetattr(fd_, &t) == 0) {  // a pty or a real port: raw bytes at the given rate
        cfmakeraw(&t);
        cfsetispeed(&t, speed_of(baud_));
        cfsetospeed(&t, speed_of(baud_));
        tcsetattr(fd_, TCSANOW, &t);
    }
}

bool Link::try_send(const uint8_t* packet, size_t len) {
    if (!serial_) {
        ssize_t n = ::send(fd_, packet, len, 0);
        return n == static_cast<ssize_t>(len);
    }
    uint8_t frame[ACOM_MAX_SERIAL];
    int n = acom_frame_serial(packet, len, frame, sizeof frame);
    if (n < 0) throw std::runtime_error("a packet of " + std::to_string(len) + " bytes does not fit a serial frame");
    for (int done = 0; done < n;) {
        ssize_t w = write(fd_, frame + done, static_cast<size_t>(n - done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        done += static_cast<int>(w);
    }
    return true;
}

void Link::send(const uint8_t* packet, size_t len) {
    int delay_ms = 100;
    for (int attempt = 0;; attempt++) {
        if (try_send(packet, len)) return;
        std::string why = std::strerror(errno);
        if (attempt == 5) throw std::runtime_error(spec_ + ": " + why + " (gave up after 5 retries)");
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
        delay_ms *= 2;
        if (serial_) {
            try {
                open_serial();
            } catch (const InputError&) {  // still gone: the next attempt fails and waits longer
            }
        }
    }
}

}  // namespace acom
