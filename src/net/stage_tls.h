// TLS between stages and their clients: a stage's guard terminates TLS with its certificate
// (h2_guard.h); whoever calls a stage checks that certificate against a CA with gRPC's own
// TLS credentials.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "base/status.h"

namespace ggswarm::net {

// The PEM text of the CA certificates in `ca_file` ("" for ""), or why it cannot be used.
StatusOr<std::string> ReadTlsCa(const std::string& ca_file);
// gRPC's TLS credentials checking a stage's certificate against the CA certificates `ca_pem`.
std::shared_ptr<grpc::ChannelCredentials> TlsCredentials(const std::string& ca_pem);

// A stage that stops answering (stopped, or its host gone without closing the connection)
// is found without waiting for a call's deadline, which has to cover a long prompt chunk on
// a slow host: while a call is open, its caller sends an HTTP/2 PING every kKeepaliveMs, and
// a stage that has not answered one within kKeepaliveTimeoutMs fails the call (UNAVAILABLE),
// as a closed connection does. gRPC's transport answers the pings, not the stage's compute.
constexpr int kKeepaliveMs = 2000, kKeepaliveTimeoutMs = 5000;
// On the channels of a stage's callers (clients, and stages pushing to the next).
void SetKeepalive(grpc::ChannelArguments* args);
// On a stage's server: pings that far apart are within its ping policy (whose default asks
// five minutes between pings without data). gRPC 1.51 was measured not to send such a
// caller away without it either, during a call (a 10 s Await, pinged every 2 s, ended at its
// deadline); without a call it does, after three pings, and so does a ping flood.
void AcceptKeepalive(grpc::ServerBuilder* b);

}  // namespace ggswarm::net
