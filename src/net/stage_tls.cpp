#include "net/stage_tls.h"

#include "base/file.h"

namespace ggswarm::net {

StatusOr<std::string> ReadTlsCa(const std::string& ca_file) {
  if (ca_file.empty()) return std::string();
  auto pem = ReadSmallFile(ca_file, 1 << 20);
  if (!pem.ok())
    return Status::InvalidArgument("--tls-ca " + ca_file + ": " + pem.status().message());
  if (pem->find("-----BEGIN CERTIFICATE-----") == std::string::npos)
    return Status::InvalidArgument("--tls-ca " + ca_file + ": no PEM certificate in it");
  return *pem;
}

void SetKeepalive(grpc::ChannelArguments* args) {
  args->SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepaliveMs);
  args->SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveTimeoutMs);
  args->SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  args->SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);  // through a long computation
}

void AcceptKeepalive(grpc::ServerBuilder* b) {
  b->AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, kKeepaliveMs / 2);
}

std::shared_ptr<grpc::ChannelCredentials> TlsCredentials(const std::string& ca_pem) {
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = ca_pem;
  return grpc::SslCredentials(o);
}

}  // namespace ggswarm::net
