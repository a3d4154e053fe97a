// Raw HTTP/2 (RFC 9113) attacks on a server, as a hostile client would send them, for the
// tests that check a stage stays bounded: a header block that never ends (CONTINUATION
// flood) and streams opened and cancelled at once ("rapid reset", CVE-2023-44487).
// Frame: length (3 bytes, big-endian), type (1), flags (1), stream id (4, top bit reserved),
// then the payload.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace ggswarm::testing {

class H2Attacker {
 public:
  enum Type : uint8_t {
    kData = 0,
    kHeaders = 1,
    kRstStream = 3,
    kSettings = 4,
    kPing = 6,
    kContinuation = 9
  };
  enum Flags : uint8_t { kEndStream = 1, kEndHeaders = 4 };

  // Connects to 127.0.0.1:port and sends the client preface and an empty SETTINGS frame.
  explicit H2Attacker(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd_);
      fd_ = -1;
      return;
    }
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    Send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    Frame(kSettings, 0, 0, "");
  }
  ~H2Attacker() {
    if (fd_ >= 0) ::close(fd_);
  }
  H2Attacker(const H2Attacker&) = delete;

  // False once the server has closed the connection or the socket failed.
  bool open() const { return fd_ >= 0; }

  // Sends one frame; false when the peer is gone or it could not be sent within `timeout`.
  bool Frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload,
             double timeout = 5) {
    std::string f(9, '\0');
    const size_t n = payload.size();
    f[0] = static_cast<char>(n >> 16);
    f[1] = static_cast<char>(n >> 8);
    f[2] = static_cast<char>(n);
    f[3] = static_cast<char>(type);
    f[4] = static_cast<char>(flags);
    f[5] = static_cast<char>((stream >> 24) & 0x7f);
    f[6] = static_cast<char>(stream >> 16);
    f[7] = static_cast<char>(stream >> 8);
    f[8] = static_cast<char>(stream);
    return Send(f + payload, timeout);
  }

  // A gRPC request's header block for `path`, HPACK-coded without indexing (RFC 7541 6.2.2).
  static std::string RequestHeaders(const std::string& path) {
    std::string h;
    h += '\x83';  // :method POST (static table 3)
    h += '\x86';  // :scheme http (static table 6)
    auto literal = [&](uint8_t name_index, const std::string& value) {
      h += static_cast<char>(name_index);    // 0000xxxx: literal, indexed name (index < 15)
      h += static_cast<char>(value.size());  // < 127: one byte, no Huffman
      h += value;
    };
    literal(4, path);         // :path
    literal(1, "127.0.0.1");  // :authority
    h += '\x00';              // literal, new name
    h += static_cast<char>(12);
    h += "content-type";
    h += static_cast<char>(16);
    h += "application/grpc";
    h += '\x00';
    h += static_cast<char>(2);
    h += "te";
    h += static_cast<char>(8);
    h += "trailers";
    return h;
  }

  // The start of one header whose value claims `value_len` bytes (HPACK integer, 7-bit
  // prefix), so that a parser must hold what follows until the value ends.
  static std::string HugeHeaderStart(uint64_t value_len) {
    std::string h;
    h += '\x00';
    h += static_cast<char>(6);
    h += "x-junk";
    if (value_len < 127) {
      h += static_cast<char>(value_len);
      return h;
    }
    h += '\x7f';
    value_len -= 127;
    while (value_len >= 128) {
      h += static_cast<char>((value_len % 128) | 128);
      value_len /= 128;
    }
    h += static_cast<char>(value_len);
    return h;
  }

  // Reads and drops whatever the server sent, without blocking; false once it has closed.
  bool Drain() {
    char buf[65536];
    for (;;) {
      const ssize_t r = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (r > 0) continue;
      if (r == 0) return Close();
      return errno == EAGAIN || errno == EWOULDBLOCK || Close();
    }
  }

 private:
  bool Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    return false;
  }

  bool Send(const std::string& b, double timeout = 5) {
    if (fd_ < 0) return false;
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
    size_t at = 0;
    while (at < b.size()) {
      const ssize_t w = ::send(fd_, b.data() + at, b.size() - at, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0) {
        at += static_cast<size_t>(w);
        continue;
      }
      if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return Close();
      if (!Drain()) return false;
      if (std::chrono::steady_clock::now() > until) return false;
      pollfd p{fd_, POLLOUT | POLLIN, 0};
      ::poll(&p, 1, 50);
    }
    return true;
  }

  int fd_ = -1;
};

}  // namespace ggswarm::testing
