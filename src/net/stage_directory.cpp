#include "net/stage_directory.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <utility>

#include "net/chain_plan.h"
#include "net/chain_verify.h"
#include "net/dht.h"
#include "net/stage_tls.h"

namespace ggswarm::net {

namespace pb = ggswarm::stage::v1;

std::string StatusText(const grpc::Status& s) {
  static const char* kNames[] = {"OK",
                                 "CANCELLED",
                                 "UNKNOWN",
                                 "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED",
                                 "NOT_FOUND",
                                 "ALREADY_EXISTS",
                                 "PERMISSION_DENIED",
                                 "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION",
                                 "ABORTED",
                                 "OUT_OF_RANGE",
                                 "UNIMPLEMENTED",
                                 "INTERNAL",
                                 "UNAVAILABLE",
                                 "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  const int c = static_cast<int>(s.error_code());
  return std::string(c >= 0 && c <= 16 ? kNames[c] : "ERROR") + ": " + s.error_message();
}

namespace {

// A model's full id: 64 hex digits, lower case.
bool IsModelId(std::string* id) {
  if (id->size() != 64) return false;
  for (char& c : *id) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

void StageDirectory::Log(const std::string& s) const {
  if (o.log) o.log(s);
}

Status StageDirectory::UseTls(const std::string& ca_file) {
  auto pem = ReadTlsCa(ca_file);
  if (!pem.ok()) return pem.status();
  if (!pem->empty()) creds = TlsCredentials(*pem);
  return Status::Ok();
}

std::unique_ptr<pb::Stage::Stub> StageDirectory::Stub(const std::string& address) const {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessage);
  args.SetMaxSendMessageSize(kMaxMessage);
  SetKeepalive(&args);
  return pb::Stage::NewStub(grpc::CreateCustomChannel(address, creds, args));
}

std::vector<HelloAnswer> StageDirectory::AskHellos(const std::vector<std::string>& addresses,
                                                   const EnoughFn& enough) const {
  return AskHello(
      addresses, [this](const std::string& a) { return Stub(a); },
      [this](grpc::ClientContext* ctx) { Prepare(ctx, kHelloDeadlineS); }, enough);
}

void StageDirectory::Prepare(grpc::ClientContext* ctx, double seconds) const {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
  if (!o.token.empty()) ctx->AddMetadata(kTokenHeader, o.token);
}

std::string StageDirectory::Where() const {
  return o.dht ? "the DHT (dht://" + o.model.substr(0, 16) + "…)" : o.address;
}

StatusOr<std::vector<pb::ServedRange>> StageDirectory::Lookup(bool all) {
  if (o.dht) return DhtLookup(all);
  std::vector<std::string> ask = {o.address};
  for (const std::string& a : seen) {
    if (a != o.address && !dead.count(a)) ask.push_back(a);
  }
  std::string last_error;
  for (const std::string& a : ask) {
    auto stub = Stub(a);
    grpc::ClientContext ctx;
    Prepare(&ctx, 5);
    pb::LookupRequest req;
    req.set_model(model_id.empty() ? o.model : model_id);
    pb::LookupReply rep;
    grpc::Status st = stub->Lookup(&ctx, req, &rep);
    if (!st.ok()) {
      last_error = a + ": " + StatusText(st);
      if (st.error_code() == grpc::StatusCode::UNAUTHENTICATED)
        return Status::InvalidArgument("peer " + last_error + " (give the stages' --token)");
      continue;
    }
    std::vector<pb::ServedRange> v(rep.ranges().begin(), rep.ranges().end());
    for (const auto& r : v) seen.insert(r.address());
    return v;
  }
  if (o.tls_ca.empty() && last_error.find("Socket closed") != std::string::npos)
    last_error += " (a stage that speaks TLS closes plain connections: give its CA with --tls-ca)";
  return Status::IOError("no peer answers: " + last_error);
}

StatusOr<std::vector<pb::ServedRange>> StageDirectory::DhtLookup(bool all) {
  if (!IsModelId(&o.model))
    return Status::InvalidArgument("dht://" + o.model.substr(0, 80) +
                                   ": expected the model's id, 64 hex digits (as `ggswarm "
                                   "stages` or `ggswarm inspect` shows it)");
  GGSWARM_RETURN_IF_ERROR(StartDht(&o));
  const DhtKey key = ModelKey(o.model);
  std::vector<Endpoint> found = o.dht_node->GetPeers(std::span<const DhtKey>(&key, 1))[0];
  if (found.size() > 256) found.resize(256);
  const size_t announced = found.size();
  // A lookup can miss what an earlier one found (a reply that came late): those are asked
  // again too.
  for (const std::string& a : seen) {
    auto e = ParseEndpoint(a);
    if (e.ok() && std::find_if(found.begin(), found.end(),
                               [&](const Endpoint& f) { return f.ToString() == a; }) == found.end())
      found.push_back(*e);
  }
  // Stages this chain found dead are not asked: their answers would be left out anyway
  // (LiveRanges), and a stage that stopped answering stays announced for up to 45 minutes,
  // so asking it would add the Hello's whole deadline to every rebuild.
  std::vector<std::string> left_out;
  std::erase_if(found, [&](const Endpoint& e) {
    const bool gone = dead.count(e.ToString()) > 0;
    if (gone) left_out.push_back(e.ToString());
    return gone;
  });
  if (!left_out.empty()) {
    std::string names;
    for (const std::string& a : left_out) names += (names.empty() ? "" : ", ") + a;
    Log("the DHT still gives " + std::to_string(left_out.size()) +
        " stage(s) found dead, not asked again: " + names);
  }
  std::vector<std::string> addresses;
  for (const Endpoint& e : found) addresses.push_back(e.ToString());
  const auto of_model = [&](const HelloAnswer& h) {
    return h.done && h.status.ok() && h.reply.served().model_id() == o.model;
  };
  // Enough: the model's stages that answered cover its layers.
  const EnoughFn covers = [&](const std::vector<HelloAnswer>& so_far) {
    std::vector<std::pair<int, int>> ranges;
    int n = 0;
    for (const HelloAnswer& h : so_far)
      if (of_model(h)) {
        const pb::ServedRange& r = h.reply.served();
        ranges.push_back({static_cast<int>(r.first_layer()), static_cast<int>(r.end_layer())});
        n = static_cast<int>(r.n_layer());
      }
    return CoversLayers(std::move(ranges), n);
  };
  const std::vector<HelloAnswer> answers = AskHellos(addresses, all ? nullptr : covers);
  std::string stragglers;
  for (size_t i = 0; i < answers.size(); ++i)
    if (!answers[i].done) stragglers += (stragglers.empty() ? "" : ", ") + addresses[i];
  if (!stragglers.empty())
    Log("the stages found cover the layers; not waiting for announced " + stragglers);
  // An address that let its Hello run into the deadline is taken for dead, as PickStage
  // takes a stage that does not answer: the next rebuild does not wait for it again. (One
  // that refuses costs only a round trip, and may be a stage starting up; one let go was
  // not waited for.)
  std::vector<pb::ServedRange> v;
  for (size_t i = 0; i < answers.size(); ++i) {
    const HelloAnswer& h = answers[i];
    if (h.done && h.status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      Log("announced stage " + addresses[i] + " does not answer within " +
          std::to_string(static_cast<int>(kHelloDeadlineS)) + " s");
      dead.insert(addresses[i]);
    }
    if (!of_model(h)) continue;
    v.push_back(h.reply.served());
    v.back().set_address(addresses[i]);  // where it answered, whatever it calls itself
    seen.insert(addresses[i]);
  }
  if (v.empty())
    return Status::NotFound(
        "no stage of model " + o.model.substr(0, 16) + " on the DHT" +
        (o.dht_bootstrap.empty() ? "" : " joined through " + o.dht_bootstrap[0]) + " answers (" +
        std::to_string(announced) + " announced there)");
  return v;
}

}  // namespace ggswarm::net
