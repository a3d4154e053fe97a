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

}  // namespace ggswarm::net
