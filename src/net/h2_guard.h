// A per-connection guard in front of the stage's gRPC server.
//
// Debian 12's gRPC (1.51) has no setting that bounds two HTTP/2 attacks: a header block that
// never ends (HEADERS followed by endless CONTINUATION frames, which 1.51 buffers whole —
// `grpc.max_metadata_size` and a resource quota were measured not to stop it: 30,000 frames
// of 16 KB took a stage to 876 MB either way) and streams opened and reset at once ("rapid
// reset", CVE-2023-44487). So the guard accepts each TCP connection itself, hands gRPC one
// end of a socket pair (grpc::AddInsecureChannelFromFd) and copies bytes between the two,
// reading the client's HTTP/2 frame headers as they pass (RFC 9113 §4.1: length 3 bytes,
// type 1, flags 1, stream id 4). A connection is closed when
//   - one header block (HEADERS + its CONTINUATIONs) passes `max_header_block` bytes,
//   - it resets streams faster than `resets_per_s` beyond a burst of `reset_burst`,
//   - it does not start with the HTTP/2 client preface;
// and no more than `max_connections` are open at once. Each connection holds at most two
// buffers of `kPumpBytes` (three, and a TLS session's own, with TLS), so the guard's own
// memory is bounded too. With TLS the guard is the TLS server, and the frames it reads are
// the decrypted ones.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "base/status.h"

namespace ggswarm::net {

// TLS on the guard's connections: it terminates TLS itself (gRPC cannot take a TLS connection
// from a file descriptor) and passes plain HTTP/2 to gRPC; ALPN "h2", TLS 1.2 or later.
struct GuardTls {
  std::string cert_file, key_file;  // PEM; both empty: no TLS
  bool enabled() const { return !cert_file.empty(); }
};

struct Http2Limits {
  size_t max_header_block = 64 << 10;  // gRPC itself refuses metadata past 8 KiB
  double resets_per_s = 50;            // a client cancels a call now and then, not in floods
  double reset_burst = 200;
  int max_connections = 128;
};

class Http2Guard {
 public:
  // Listens on `listen` (HOST:PORT, port 0 for any) and gives each accepted connection's
  // inner end to `hand_off`, which owns it from then on. `log` hears why a connection was
  // closed; it may be empty.
  static StatusOr<std::unique_ptr<Http2Guard>> Start(const std::string& listen,
                                                     const Http2Limits& limits,
                                                     std::function<void(int fd)> hand_off,
                                                     std::function<void(const std::string&)> log,
                                                     const GuardTls& tls = {});
  ~Http2Guard();  // stops accepting and closes every connection
  Http2Guard(const Http2Guard&) = delete;
  int port() const;

  struct Impl;

 private:
  Http2Guard() = default;
  std::unique_ptr<Impl> impl_;
};

// How the guard reads one direction of client bytes; separate so it can be tested and fuzzed
// on its own. Feed() takes bytes in any cuts and says whether the connection may go on.
class Http2FrameWatch {
 public:
  Http2FrameWatch(const Http2Limits& limits, double now_s);
  // False (with why()) once the bytes break a limit; stays false.
  bool Feed(const uint8_t* data, size_t n, double now_s);
  const std::string& why() const { return why_; }

 private:
  bool Fail(const std::string& why);
  Http2Limits limits_;
  size_t preface_seen_ = 0;  // bytes of the 24-byte client preface matched so far
  uint8_t head_[9];
  size_t head_have_ = 0;
  uint64_t payload_left_ = 0;  // of the frame in hand
  bool in_block_ = false;      // a header block awaits its END_HEADERS
  uint64_t block_bytes_ = 0;
  double tokens_;  // reset allowance
  double last_s_;
  std::string why_;
};

}  // namespace ggswarm::net
