#include "net/h2_guard.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <list>
#include <thread>
#include <vector>

namespace ggswarm::net {
namespace {

constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";  // RFC 9113 §3.4
constexpr size_t kPrefaceLen = sizeof(kPreface) - 1;
constexpr size_t kFrameHeader = 9;
constexpr uint8_t kHeaders = 0x1, kRstStream = 0x3, kContinuation = 0x9;
constexpr uint8_t kEndHeaders = 0x4;
// Bytes held per direction of a connection: enough to move a message at memory speed in a few
// poll rounds, small enough that max_connections of them stay a few tens of MB.
constexpr size_t kPumpBytes = 128 << 10;

double NowS() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

// Bytes waiting to go from one socket to the other.
struct Pipe {
  std::vector<uint8_t> buf = std::vector<uint8_t>(kPumpBytes);
  size_t begin = 0, end = 0;
  bool eof = false;  // the source has closed
  bool empty() const { return begin == end; }
  bool room() const { return end < buf.size(); }
};

struct Connection {
  int outer = -1;  // the client's TCP socket
  int inner = -1;  // our end of the pair whose other end gRPC owns
  Pipe up;         // client → gRPC, watched
  Pipe down;       // gRPC → client
  Http2FrameWatch watch;
  // With TLS: the session, fed the client's bytes through `rbio` and writing its own into
  // `wbio` (memory BIOs), and `wire` the encrypted bytes waiting for the client.
  SSL* ssl = nullptr;
  BIO *rbio = nullptr, *wbio = nullptr;
  Pipe wire;
  bool outer_eof = false;
  Connection(int o, int i, const Http2Limits& l) : outer(o), inner(i), watch(l, NowS()) {}
  ~Connection() {
    if (ssl) SSL_free(ssl);  // frees its BIOs too
    ::close(outer);
    ::close(inner);
  }
  Pipe& out() { return ssl ? wire : down; }  // what goes to the client's socket
};

std::string SslErrors() {
  std::string s;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    s += (s.empty() ? "" : "; ") + std::string(buf);
  }
  return s.empty() ? "the peer closed the connection" : s;
}

// ALPN: the guard speaks HTTP/2 only.
int SelectH2(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
             unsigned int inlen, void*) {
  static const unsigned char kH2[] = {2, 'h', '2'};
  unsigned char* sel = nullptr;
  if (SSL_select_next_proto(&sel, outlen, kH2, sizeof kH2, in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

// Reads what fits from `fd` into `p`; false on error.
bool Fill(int fd, Pipe& p) {
  if (p.begin == p.end) p.begin = p.end = 0;
  if (!p.room() || p.eof) return true;
  const ssize_t r = ::recv(fd, p.buf.data() + p.end, p.buf.size() - p.end, MSG_DONTWAIT);
  if (r > 0) {
    p.end += static_cast<size_t>(r);
  } else if (r == 0) {
    p.eof = true;
  } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    return false;
  }
  return true;
}

// Writes what it can of `p` to `fd`; false on error.
bool Flush(int fd, Pipe& p) {
  if (p.empty()) return true;
  const ssize_t w =
      ::send(fd, p.buf.data() + p.begin, p.end - p.begin, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (w > 0) {
    p.begin += static_cast<size_t>(w);
    if (p.begin == p.end) p.begin = p.end = 0;
  } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    return false;
  }
  return true;
}

}  // namespace

Http2FrameWatch::Http2FrameWatch(const Http2Limits& limits, double now_s)
    : limits_(limits), tokens_(limits.reset_burst), last_s_(now_s) {}

bool Http2FrameWatch::Fail(const std::string& why) {
  if (why_.empty()) why_ = why;
  return false;
}

bool Http2FrameWatch::Feed(const uint8_t* data, size_t n, double now_s) {
  if (!why_.empty()) return false;
  size_t at = 0;
  while (at < n && preface_seen_ < kPrefaceLen) {
    if (data[at] != static_cast<uint8_t>(kPreface[preface_seen_]))
      return Fail("not an HTTP/2 client (no connection preface)");
    ++at;
    ++preface_seen_;
  }
  while (at < n) {
    if (payload_left_ > 0) {  // skip the payload: only frame headers are read
      const uint64_t skip = std::min<uint64_t>(payload_left_, n - at);
      payload_left_ -= skip;
      at += static_cast<size_t>(skip);
      continue;
    }
    const size_t take = std::min(kFrameHeader - head_have_, n - at);
    std::memcpy(head_ + head_have_, data + at, take);
    head_have_ += take;
    at += take;
    if (head_have_ < kFrameHeader) break;
    head_have_ = 0;
    const uint32_t length = (uint32_t{head_[0]} << 16) | (uint32_t{head_[1]} << 8) | head_[2];
    const uint8_t type = head_[3], flags = head_[4];
    payload_left_ = length;
    if (type == kHeaders) {
      in_block_ = true;
      block_bytes_ = 0;
    }
    if (type == kHeaders || (type == kContinuation && in_block_)) {
      block_bytes_ += length;
      if (block_bytes_ > limits_.max_header_block)
        return Fail("a header block of more than " + std::to_string(limits_.max_header_block) +
                    " bytes");
      if (flags & kEndHeaders) in_block_ = false;
    }
    if (type == kRstStream) {
      tokens_ = std::min(limits_.reset_burst,
                         tokens_ + std::max(0.0, now_s - last_s_) * limits_.resets_per_s);
      last_s_ = now_s;
      if (tokens_ < 1)
        return Fail("streams reset faster than " +
                    std::to_string(static_cast<int>(limits_.resets_per_s)) + " per second");
      tokens_ -= 1;
    }
  }
  return true;
}

struct Http2Guard::Impl {
  Http2Limits limits;
  SSL_CTX* tls = nullptr;  // null: plain TCP
  ~Impl() {
    connections.clear();  // their sessions before the context
    if (tls) SSL_CTX_free(tls);
  }
  std::function<void(int)> hand_off;
  std::function<void(const std::string&)> log;
  int listener = -1;
  int port = 0;
  int wake[2] = {-1, -1};  // a byte on wake[1] ends the loop
  std::atomic<bool> stopping{false};
  std::list<Connection> connections;
  std::thread thread;

  void Log(const std::string& s) {
    if (log) log(s);
  }

  void Accept() {
    for (;;) {
      const int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      if (static_cast<int>(connections.size()) >= limits.max_connections) {
        ::close(fd);  // full: the client sees the connection close and may retry
        continue;
      }
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      int pair[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
        ::close(fd);
        continue;
      }
      SetNonBlocking(pair[0]);
      SetNonBlocking(pair[1]);
      Connection& c = connections.emplace_back(fd, pair[0], limits);
      if (tls) {
        c.ssl = SSL_new(tls);
        c.rbio = BIO_new(BIO_s_mem());
        c.wbio = BIO_new(BIO_s_mem());
        SSL_set_bio(c.ssl, c.rbio, c.wbio);
        SSL_set_accept_state(c.ssl);
      }
      hand_off(pair[1]);
    }
  }

  // Moves bytes of one connection as far as its sockets allow; false when it is done.
  bool Pump(Connection& c, short outer_ev, short inner_ev) {
    if ((outer_ev | inner_ev) & (POLLERR | POLLNVAL)) return false;
    if (outer_ev & (POLLIN | POLLHUP)) {
      if (c.ssl) {
        if (!Receive(c)) return false;
      } else {
        const size_t before = c.up.end;
        if (!Fill(c.outer, c.up)) return false;
        if (!Watch(c, before)) return false;
      }
    }
    if (c.ssl && !Decrypt(c)) return false;
    if (inner_ev & (POLLIN | POLLHUP) && !Fill(c.inner, c.down)) return false;
    if (c.ssl && !Encrypt(c)) return false;
    if (!Flush(c.inner, c.up) || !Flush(c.outer, c.out())) return false;
    // A side that has closed is done once what it sent has been passed on.
    return !((c.up.eof && c.up.empty()) || (c.down.eof && c.down.empty() && c.out().empty()));
  }

  bool Watch(Connection& c, size_t before) {
    if (c.up.end > before && !c.watch.Feed(c.up.buf.data() + before, c.up.end - before, NowS())) {
      Log("closed a connection: " + c.watch.why());
      return false;
    }
    return true;
  }

  // TLS: the client's encrypted bytes into the session, as much as one pump's worth.
  bool Receive(Connection& c) {
    uint8_t buf[16 << 10];
    while (!c.outer_eof && BIO_ctrl_pending(c.rbio) < kPumpBytes) {
      const ssize_t r = ::recv(c.outer, buf, sizeof buf, MSG_DONTWAIT);
      if (r > 0) {
        BIO_write(c.rbio, buf, static_cast<int>(r));
      } else if (r == 0) {
        c.outer_eof = true;
      } else {
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
      }
    }
    return true;
  }

  // TLS: plain bytes out of the session (the handshake first) into `up`, watched as ever.
  bool Decrypt(Connection& c) {
    if (c.up.begin == c.up.end) c.up.begin = c.up.end = 0;
    while (c.up.room() && !c.up.eof) {
      const size_t before = c.up.end;
      const int n =
          SSL_read(c.ssl, c.up.buf.data() + c.up.end, static_cast<int>(c.up.buf.size() - c.up.end));
      if (n > 0) {
        c.up.end += static_cast<size_t>(n);
        if (!Watch(c, before)) return false;
        continue;
      }
      const int e = SSL_get_error(c.ssl, n);
      if (e == SSL_ERROR_WANT_READ) {
        if (c.outer_eof) c.up.eof = true;  // nothing more will come
        break;
      }
      if (e == SSL_ERROR_ZERO_RETURN) {
        c.up.eof = true;
        break;
      }
      if (e == SSL_ERROR_WANT_WRITE) break;
      Log("closed a connection: TLS: " + SslErrors());
      return false;
    }
    return true;
  }

  // TLS: gRPC's bytes through the session, and what it writes into `wire`.
  bool Encrypt(Connection& c) {
    while (!c.down.empty() && SSL_is_init_finished(c.ssl) &&
           BIO_ctrl_pending(c.wbio) < kPumpBytes) {
      const int n = SSL_write(c.ssl, c.down.buf.data() + c.down.begin,
                              static_cast<int>(c.down.end - c.down.begin));
      if (n <= 0) {
        const int e = SSL_get_error(c.ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
        Log("closed a connection: TLS: " + SslErrors());
        return false;
      }
      c.down.begin += static_cast<size_t>(n);
      if (c.down.begin == c.down.end) c.down.begin = c.down.end = 0;
    }
    if (c.wire.begin == c.wire.end) c.wire.begin = c.wire.end = 0;
    while (c.wire.room() && BIO_ctrl_pending(c.wbio) > 0) {
      const int n = BIO_read(c.wbio, c.wire.buf.data() + c.wire.end,
                             static_cast<int>(c.wire.buf.size() - c.wire.end));
      if (n <= 0) break;
      c.wire.end += static_cast<size_t>(n);
    }
    return true;
  }

  void Loop() {
    std::vector<pollfd> fds;
    while (!stopping) {
      fds.clear();
      fds.push_back({wake[0], POLLIN, 0});
      fds.push_back({listener, POLLIN, 0});
      for (Connection& c : connections) {
        const short out = (c.up.room() && !c.up.eof && !c.outer_eof ? POLLIN : 0) |
                          (c.out().empty() ? 0 : POLLOUT);
        const short in = (c.down.room() && !c.down.eof ? POLLIN : 0) | (c.up.empty() ? 0 : POLLOUT);
        fds.push_back({c.outer, out, 0});
        fds.push_back({c.inner, in, 0});
      }
      if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) break;
      if (fds[1].revents & POLLIN) Accept();
      size_t i = 2;
      for (auto it = connections.begin(); it != connections.end() && i + 1 < fds.size(); i += 2) {
        if (!Pump(*it, fds[i].revents, fds[i + 1].revents)) {
          it = connections.erase(it);
        } else {
          ++it;
        }
      }
    }
    connections.clear();
  }
};

StatusOr<std::unique_ptr<Http2Guard>> Http2Guard::Start(const std::string& listen,
                                                        const Http2Limits& limits,
                                                        std::function<void(int)> hand_off,
                                                        std::function<void(const std::string&)> log,
                                                        const GuardTls& tls) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos)
    return Status::InvalidArgument("listen address " + listen + " is not HOST:PORT");
  std::string host = listen.substr(0, colon);
  const std::string port = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res) != 0)
    return Status::InvalidArgument("cannot listen on " + listen + ": not an address");
  auto impl = std::make_unique<Impl>();
  if (tls.enabled()) {
    impl->tls = SSL_CTX_new(TLS_server_method());
    if (!impl->tls) {
      ::freeaddrinfo(res);
      return Status::IOError("TLS: " + SslErrors());
    }
    SSL_CTX_set_min_proto_version(impl->tls, TLS1_2_VERSION);
    SSL_CTX_set_alpn_select_cb(impl->tls, SelectH2, nullptr);
    if (SSL_CTX_use_certificate_chain_file(impl->tls, tls.cert_file.c_str()) != 1) {
      ::freeaddrinfo(res);
      return Status::InvalidArgument("--tls-cert " + tls.cert_file + ": " + SslErrors());
    }
    if (SSL_CTX_use_PrivateKey_file(impl->tls, tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(impl->tls) != 1) {
      ::freeaddrinfo(res);
      return Status::InvalidArgument("--tls-key " + tls.key_file + ": " + SslErrors());
    }
  }
  for (addrinfo* a = res; a && impl->listener < 0; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 128) == 0) {
      impl->listener = fd;
    } else {
      ::close(fd);
    }
  }
  ::freeaddrinfo(res);
  if (impl->listener < 0)
    return Status::IOError("cannot listen on " + listen + " (in use, or not an address here?)");
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(impl->listener, reinterpret_cast<sockaddr*>(&ss), &len);
  impl->port = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  if (::pipe2(impl->wake, O_CLOEXEC) != 0) {
    ::close(impl->listener);
    return Status::IOError("cannot make a pipe");
  }
  impl->limits = limits;
  impl->hand_off = std::move(hand_off);
  impl->log = std::move(log);
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->Loop(); });
  auto g = std::unique_ptr<Http2Guard>(new Http2Guard());
  g->impl_ = std::move(impl);
  return g;
}

Http2Guard::~Http2Guard() {
  if (!impl_) return;
  impl_->stopping = true;
  const char b = 1;
  (void)!::write(impl_->wake[1], &b, 1);
  if (impl_->thread.joinable()) impl_->thread.join();
  ::close(impl_->listener);
  ::close(impl_->wake[0]);
  ::close(impl_->wake[1]);
}

int Http2Guard::port() const { return impl_->port; }

}  // namespace ggswarm::net
