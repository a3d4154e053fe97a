// The flags of every command that can reach a swarm as a client (run, chat, server): the
// stages' token and CA, the DHT nodes to join through, honest computation, push.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "api/open_model.h"

namespace ggswarm::cli {

struct SwarmClientFlags {
  std::string token;                       // the stages' --token
  std::string tls_ca;                      // the stages' CA, for TLS
  std::vector<std::string> dht_bootstrap;  // dht:// nodes to join through
  double verify_fraction = 0;              // steps checked on other stages
  bool no_push = false;

  void ApplyTo(api::OpenOptions* o) const {
    o->token = token;
    o->tls_ca = tls_ca;
    o->dht_bootstrap = dht_bootstrap;
    o->verify_fraction = verify_fraction;
    o->push = !no_push;
  }
};

// --no-push only where `push_flag` (chat's one sequence goes hop by hop either way).
inline void AddSwarmClientFlags(CLI::App* c, SwarmClientFlags* f, bool push_flag = true) {
  c->add_option("--token", f->token, "The stages' --token (swarm:// models)");
  c->add_option("--tls-ca", f->tls_ca, "The stages' CA certificate (PEM), when they use TLS");
  c->add_option("--dht-bootstrap", f->dht_bootstrap,
                "dht://: a DHT node to join through, HOST:PORT (repeatable)");
  c->add_option("--verify-fraction", f->verify_fraction,
                "Swarm: also compute this fraction of steps on other stages, and ban a stage "
                "that disagrees (0 to 1; default 0)")
      ->check(CLI::Range(0.0, 1.0));
  if (push_flag)
    c->add_flag("--no-push", f->no_push,
                "swarm://: every hop through ggswarm itself (stages do not push to each other)");
}

}  // namespace ggswarm::cli
