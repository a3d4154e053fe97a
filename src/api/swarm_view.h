// What `ggswarm server swarm://…` shows of its swarm, at /v1/swarm as JSON and at /swarm as a
// page that draws it: every stage a peer knows of the model, each asked how it is (address,
// layers, latency, load, free sessions), the layers no answering stage serves, and the
// chains the server's lanes use now.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "net/stage_client.h"

namespace ggswarm::api {

class SwarmView {
 public:
  // `chains`: the lanes' chains, which outlive the view (the server holds both).
  // `where`: how the chains look their stages up (swarm:// or dht://).
  SwarmView(net::ChainOptions where, std::vector<const net::SwarmChain*> chains);
  // HTTP status and JSON body. The swarm is asked at most once a second, however many ask.
  std::pair<int, std::string> Json();

 private:
  std::pair<int, std::string> Build();

  net::ChainOptions where_;
  std::vector<const net::SwarmChain*> chains_;
  std::vector<std::string> known_;  // stages seen before: asked when the entry peer is gone
  std::mutex mu_;
  std::chrono::steady_clock::time_point at_;
  std::pair<int, std::string> last_;
};

// The page at /swarm (one HTML file with its script; no build step, no CDN).
const char* SwarmPageHtml();

}  // namespace ggswarm::api
