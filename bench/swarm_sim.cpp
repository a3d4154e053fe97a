// A swarm too large for this machine, simulated (issue 26): hosts that each serve a range of
// a model's layers, users whose clients build chains over them with ggswarm's own chain
// choice (net::PlanChain, which SwarmChain uses), stages that batch what waits for them,
// links with latency and bandwidth, and churn: hosts leave (some silently), clients detect it
// (at once, or when a keepalive ping goes unanswered), look the swarm up again, rebuild the chain
// and replay the sequences as SwarmChain does (net::ReplayCalls: the prompt as it was sent, the
// generated tokens in runs), and new hosts take the range with the fewest replicas. Discrete
// events, one thread.
//
//   swarm_sim [--scenario here|lan|datacentre|home|home-churn] [--hosts N] [--users N]
//             [--seconds S] [--seed N] [--table]
// --table runs the grid of docs/scaling.md (70B Q4_K_M on 4-64 hosts, 1-256 users).
// Every number below is an assumption stated in docs/scaling.md, or measured on this
// machine (`here`: its step costs from `ggswarm bench`, the loopback and 20 ms figures).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "model/ops.h"
#include "net/chain_plan.h"
#include "net/dht.h"
#include "net/stage.h"
#include "net/stage_client.h"
#include "net/stage_tls.h"

namespace {

using ggswarm::GgmlType;
using ggswarm::model::ExactBatch;
using ggswarm::net::PlanChain;
using ggswarm::net::ReplayCalls;
using ggswarm::net::StageChoice;

struct Model {
  const char* name;
  int n_layer;
  // Per layer, per step of a host: seconds for b single tokens (b = 1, 2, 4, 8, 16, 32, 64;
  // linear between) and per token of a prompt chunk.
  double step_s[7];
  double prompt_token_s;
  double hidden_bytes;  // per token between stages (f32)
  int exact_run;        // single steps replayed at once (net::ExactRun: model::ExactBatch)
};

struct Scenario {
  const char* name;
  Model model;
  int layers_per_host;
  double rtt_ms_median, rtt_sigma;  // between any two parties: lognormal
  double mbit_s;                    // hosts' upload: the median of a lognormal
  double mbit_sigma;
  double call_overhead_ms;        // gRPC, per hop
  double lifetime_s;              // mean host lifetime (exponential); 0: hosts stay
  double silent_fraction;         // of leaving hosts that stop answering rather than close
  double silent_s;                // until a silent host is found (keepalive, or the deadline)
  bool dht;                       // stages found on the DHT (else: asking a peer, --peer)
  double join_s;                  // until a replacement host serves (fetching its layers)
  int prompt_tokens, gen_tokens;  // each user's requests, back to back
  int lanes_of;                   // sequences stepped together by one client (a lane)
};

// 70B Q4_K_M (Llama-2-70B shapes: 80 layers, 8192 wide; 40 GB of layers, 0.5 GB each). A
// step reads the layer's bytes once (memory-bound) until b tokens of int8 row dots cost more.
Model Llama70(double mem_gbs, double tops) {
  Model m{"70B Q4_K_M", 80,
          {},           0,
          8192 * 4,     std::min(ExactBatch(GgmlType::Q4_K), ExactBatch(GgmlType::Q6_K))};
  const double bytes = 0.5e9, flops = 2 * 0.86e9;
  const int b[7] = {1, 2, 4, 8, 16, 32, 64};
  for (int i = 0; i < 7; ++i)
    m.step_s[i] = std::max(bytes / (mem_gbs * 1e9), b[i] * flops / (tops * 1e12)) + 20e-6;
  m.prompt_token_s = flops / (tops * 1e12);
  return m;
}

// This machine (2 cores, AVX-512 VNNI): a tinyllama-1.1b Q8_0 model's step costs for one
// thread per stage, from `ggswarm bench -t 1 -p B` (filled in by --measured).
Model Here() {
  return Model{"tinyllama-1.1b Q8_0 (this machine, 1 thread)",
               22,
               {0, 0, 0, 0, 0, 0, 0},
               0,
               2048 * 4,
               ExactBatch(GgmlType::Q8_0)};
}

Scenario Get(const std::string& name) {
  Scenario s{};
  s.prompt_tokens = 128;
  s.gen_tokens = 128;
  // A silent host fails the calls open to it when a keepalive ping goes unanswered (at most
  // one ping interval, then the ping's timeout: net/stage_tls.h), or at the clients' own
  // call deadline, whichever comes first.
  s.silent_s = std::min(ggswarm::net::ChainOptions{}.deadline_s,
                        (ggswarm::net::kKeepaliveMs + ggswarm::net::kKeepaliveTimeoutMs) / 1e3);
  s.silent_fraction = 0.5;
  s.lanes_of = 1;
  s.call_overhead_ms = 0.2;
  s.layers_per_host = 20;
  if (name == "here" || name == "here-20ms") {
    s.name = name == "here" ? "here (loopback)" : "here (20 ms round trips)";
    s.model = Here();
    s.layers_per_host = 11;
    s.rtt_ms_median = name == "here" ? 0.1 : 20;
    s.rtt_sigma = 0;
    s.mbit_s = 10000;
    s.call_overhead_ms = name == "here" ? 0.17 : 1.5;
    s.prompt_tokens = 8;
    s.gen_tokens = 64;
  } else if (name == "lan") {
    s.name = "LAN (desktops: 40 GB/s, 0.5 TOPS)";
    s.model = Llama70(40, 0.5);
    s.rtt_ms_median = 0.3;
    s.rtt_sigma = 0.3;
    s.mbit_s = 1000;
  } else if (name == "datacentre") {
    s.name = "datacentre (servers: 150 GB/s, 2 TOPS)";
    s.model = Llama70(150, 2);
    s.rtt_ms_median = 0.5;
    s.rtt_sigma = 0.3;
    s.mbit_s = 10000;
  } else {
    s.name = name == "home" ? "home broadband (desktops)" : "home broadband, churn";
    s.model = Llama70(40, 0.5);
    s.rtt_ms_median = 40;
    s.rtt_sigma = 0.5;
    s.mbit_s = 20;
    s.mbit_sigma = 0.7;  // home uplinks from about 5 to 80 Mbit/s
    s.dht = true;        // across the internet: the directory is the DHT (dht://)
    if (name == "home-churn") {
      s.lifetime_s = 3600;
      s.join_s = 10e9 / (100e6 / 8);  // its 10 GB of layers at 100 Mbit/s: 800 s
    }
  }
  return s;
}

double StepSeconds(const Model& m, int b) {
  static const int kB[7] = {1, 2, 4, 8, 16, 32, 64};
  if (b <= 1) return m.step_s[0];
  for (int i = 1; i < 7; ++i)
    if (b <= kB[i])
      return m.step_s[i - 1] +
             (m.step_s[i] - m.step_s[i - 1]) * (b - kB[i - 1]) / double(kB[i] - kB[i - 1]);
  return m.step_s[6] * b / 64.0;
}

struct Job {
  int lane;
  int hop;
  int tokens;  // of each sequence of the lane (1 for a generated token, more for a prompt)
  int seqs;
  uint64_t epoch;  // the lane's chain when it was sent: a stale job is dropped
};

struct Host {
  int first = 0, end = 0;
  double mbit_s = 0;  // its upload
  bool alive = true, silent = false;
  double busy_until = 0;
  std::vector<Job> queue;
  std::vector<Job> running;  // the step under way
  bool scheduled = false;
  std::vector<double> rtt_to;  // to each lane's client, ms
  // Its DHT node: its id, and until when, after it left, it stays in other nodes' routing
  // tables and its announcement stays stored.
  uint64_t dht_id = 0;
  double in_tables_until = 0, announced_until = 0;
};

struct Lane {
  std::vector<int> chain;  // host indices
  uint64_t epoch = 0;
  int pos = 0;             // positions of each sequence so far
  int generated = 0;       // of the current request
  double last_token = -1;  // when the previous token came back
  double recovering_since = -1;
  long tokens = 0;
  int failovers = 0;
  uint64_t dht_id = 0;  // its client's (read-only) DHT node
  std::set<int> dead;   // hosts its chain found dead (SwarmChain's dead set)
  std::set<int> seen;   // hosts that answered one of its lookups
};

// libtorrent 2.0's DHT, as far as a lookup's time depends on it: routing table buckets of 8
// nodes (its extended table keeps more in the farthest buckets: fewer hops than modelled),
// an announcement stored on the 8 nodes closest to its key, 5 requests in flight
// (settings_pack::dht_search_branching), a request that has not been answered in 1 s
// replaced by another and given up after 15 s (rpc_manager), at most 100 peers in a reply
// (dht_max_peers_reply), announcements kept for 45 minutes (1.5 × its 30-minute announce
// interval). A node that left stays in routing tables until its bucket is refreshed (every
// 15 minutes).
constexpr int kDhtK = 8, kDhtBranching = 5, kDhtPeersPerReply = 100;
constexpr double kDhtShortTimeoutS = 1, kDhtTimeoutS = 15, kDhtAnnounceLifeS = 45 * 60,
                 kDhtTableRefreshS = 15 * 60;

uint64_t Mix(uint64_t x) {  // splitmix64: a fixed pseudo-random order of pairs of ids
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

struct Sim {
  Scenario sc;
  std::mt19937_64 rng;
  std::vector<Host> hosts;
  std::vector<Lane> lanes;
  using Event = std::pair<double, uint64_t>;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events;
  std::map<uint64_t, std::function<void()>> actions;
  uint64_t next_id = 0;
  double now = 0, end = 0;
  std::vector<double> tpot, recoveries;
  std::vector<double> finding;  // of each rebuild: looking the stages up, picking, opening
  uint64_t dht_key = 0;         // the model's key on the DHT

  void At(double t, std::function<void()> f) {
    actions[next_id] = std::move(f);
    events.push({t, next_id++});
  }
  std::map<std::pair<int, int>, double> pair_rtt;
  double PairRtt(int a, int b) {
    auto key = std::minmax(a, b);
    auto it = pair_rtt.find(key);
    if (it == pair_rtt.end()) it = pair_rtt.emplace(key, Rtt()).first;
    return it->second;
  }
  double Rtt() {
    std::lognormal_distribution<double> d(std::log(sc.rtt_ms_median), sc.rtt_sigma);
    return sc.rtt_sigma == 0 ? sc.rtt_ms_median : d(rng);
  }
  // From a host with `mbit_s` of upload (0: the client, whose upload carries token ids).
  double OneWay(double rtt_ms, int tokens, double mbit_s = 0) const {
    return rtt_ms / 2e3 + sc.call_overhead_ms / 1e3 +
           (mbit_s > 0 ? tokens * sc.model.hidden_bytes * 8 / (mbit_s * 1e6) : 0);
  }

  void AddHost(int first) {
    Host h;
    h.first = first;
    h.end = std::min(sc.model.n_layer, first + sc.layers_per_host);
    std::lognormal_distribution<double> up(std::log(sc.mbit_s), sc.mbit_sigma);
    h.mbit_s = sc.mbit_sigma == 0 ? sc.mbit_s : up(rng);
    for (size_t l = 0; l < lanes.size(); ++l) h.rtt_to.push_back(Rtt());
    h.dht_id = rng();
    hosts.push_back(h);
    const int id = static_cast<int>(hosts.size()) - 1;
    if (sc.lifetime_s > 0) {
      std::exponential_distribution<double> life(1 / sc.lifetime_s);
      At(now + life(rng), [this, id] { Leave(id); });
    }
  }

  void Leave(int id) {
    Host& h = hosts[id];
    h.alive = false;
    std::bernoulli_distribution silent(sc.silent_fraction);
    h.silent = silent(rng);
    std::uniform_real_distribution<double> u(0, 1);
    h.in_tables_until = now + kDhtTableRefreshS * u(rng);
    // Its last announcement, up to one re-announce interval ago, is kept 45 minutes.
    h.announced_until = now + kDhtAnnounceLifeS - ggswarm::net::StageOptions{}.dht_every_s * u(rng);
    // The jobs waiting for it and those of the step it was computing are lost.
    for (const Job& j : h.queue) Fail(j.lane, j.epoch, id);
    for (const Job& j : h.running) Fail(j.lane, j.epoch, id);
    h.queue.clear();
    h.running.clear();
    // A new host takes the range with the fewest live replicas, once it has its layers.
    At(now + sc.join_s, [this] {
      std::map<int, int> live;
      for (int f = 0; f < sc.model.n_layer; f += sc.layers_per_host) live[f] = 0;
      for (const Host& x : hosts)
        if (x.alive) live[x.first]++;
      int best = 0, fewest = 1 << 30;
      for (auto [f, n] : live)
        if (n < fewest) fewest = n, best = f;
      AddHost(best);
      hosts.back().rtt_to.resize(lanes.size());
      for (auto& r : hosts.back().rtt_to) r = Rtt();
    });
  }

  // The chain a lane's client builds: ggswarm's own choice over `found` (the live hosts it
  // knows of), by round trip.
  bool Plan(int lane, const std::vector<int>& found) {
    std::vector<StageChoice> live;
    for (int i : found)
      live.push_back({hosts[i].first, hosts[i].end, false, true, hosts[i].rtt_to[lane]});
    auto plan = PlanChain(live, sc.model.n_layer);
    if (!plan.ok()) return false;
    lanes[lane].chain.clear();
    for (size_t k : *plan) lanes[lane].chain.push_back(found[k]);
    lanes[lane].epoch++;
    return true;
  }
  std::vector<int> Live() const {
    std::vector<int> v;
    for (int i = 0; i < static_cast<int>(hosts.size()); ++i)
      if (hosts[i].alive) v.push_back(i);
    return v;
  }

  // The DHT (scenarios with sc.dht): every host runs a node (serve --dht); clients' nodes are
  // read-only, in no routing table. Of node `self`'s routing table, the kDhtK nodes closest
  // to `key`: the table holds, per bucket (the length of the prefix shared with self), at most
  // kDhtK of the nodes in tables (a fixed choice for each pair of ids).
  std::vector<int> Closest(uint64_t self, uint64_t key) const {
    std::map<int, std::vector<std::pair<uint64_t, int>>> buckets;
    for (int i = 0; i < static_cast<int>(hosts.size()); ++i) {
      const Host& h = hosts[i];
      if ((!h.alive && now >= h.in_tables_until) || h.dht_id == self) continue;
      buckets[__builtin_clzll(self ^ h.dht_id)].push_back({Mix(self ^ h.dht_id), i});
    }
    std::vector<std::pair<uint64_t, int>> table;
    for (auto& [b, v] : buckets) {
      const size_t keep = std::min<size_t>(kDhtK, v.size());
      std::partial_sort(v.begin(), v.begin() + keep, v.end());
      for (size_t j = 0; j < keep; ++j)
        table.push_back({hosts[v[j].second].dht_id ^ key, v[j].second});
    }
    const size_t k = std::min<size_t>(kDhtK, table.size());
    std::partial_sort(table.begin(), table.begin() + k, table.end());
    std::vector<int> out;
    for (size_t j = 0; j < k; ++j) out.push_back(table[j].second);
    return out;
  }

  // ggswarm's GetPeers for the model's key (net/dht.cpp) from lane's client, on libtorrent's
  // iterative lookup: each reply from one of the nodes that store the key brings up to
  // kDhtPeersPerReply of its announcements, and GetPeers returns once none has come for
  // kDhtQuietS, or after kDhtMaxWaitS. The seconds it takes, and the hosts it gives.
  std::pair<double, std::vector<int>> GetPeers(int lane) {
    std::vector<std::pair<uint64_t, int>> by_key;  // the storers: the kDhtK live closest
    std::vector<int> announced;
    for (int i = 0; i < static_cast<int>(hosts.size()); ++i) {
      if (hosts[i].alive) by_key.push_back({hosts[i].dht_id ^ dht_key, i});
      if (hosts[i].alive || now < hosts[i].announced_until) announced.push_back(i);
    }
    std::sort(by_key.begin(), by_key.end());
    std::set<int> storers;
    for (size_t j = 0; j < by_key.size() && j < kDhtK; ++j) storers.insert(by_key[j].second);

    enum { kNew, kAsked, kSlow, kAnswered, kFailed };
    struct Node {
      uint64_t d;
      int host, state;
    };
    std::vector<Node> res;  // the lookup's nodes, closest to the key first
    auto add = [&](int h) {
      for (const Node& n : res)
        if (n.host == h) return;
      res.push_back({hosts[h].dht_id ^ dht_key, h, kNew});
      std::sort(res.begin(), res.end(), [](const Node& a, const Node& b) { return a.d < b.d; });
    };
    for (int h : Closest(lanes[lane].dht_id, dht_key)) add(h);
    enum { kReply, kShort, kFail };
    using Ev = std::tuple<double, int, int>;  // when, what, which host
    std::priority_queue<Ev, std::vector<Ev>, std::greater<>> q;
    int in_flight = 0, branching = kDhtBranching;
    auto ask = [&](double t) {
      int target = kDhtK;
      for (Node& n : res) {
        if (target == 0 || in_flight >= branching) break;
        if (n.state == kAnswered) --target;
        if (n.state != kNew) continue;
        n.state = kAsked;
        ++in_flight;
        const Host& h = hosts[n.host];
        if (h.alive)
          q.push({t + h.rtt_to[lane] / 1e3, kReply, n.host});
        else
          q.push({t + kDhtShortTimeoutS, kShort, n.host});
      }
    };
    auto node = [&](int h) -> Node& {
      return *std::find_if(res.begin(), res.end(), [h](const Node& n) { return n.host == h; });
    };
    ask(0);
    std::vector<double> replies;  // of the storers, when
    while (!q.empty()) {
      auto [t, what, h] = q.top();
      q.pop();
      if (t > ggswarm::net::kDhtMaxWaitS) break;
      if (what == kReply) {
        node(h).state = kAnswered;
        --in_flight;
        if (storers.count(h)) replies.push_back(t);
        for (int c : Closest(hosts[h].dht_id, dht_key)) add(c);
      } else if (what == kShort) {  // one more request goes out in its place
        node(h).state = kSlow;
        --in_flight;
        ++branching;
        q.push({t + kDhtTimeoutS - kDhtShortTimeoutS, kFail, h});
      } else {
        node(h).state = kFailed;
        --branching;
      }
      ask(t);
    }
    double took = ggswarm::net::kDhtMaxWaitS;
    size_t counted = 0;
    for (size_t j = 0; j < replies.size(); ++j) {
      counted = j + 1;
      if (j + 1 == replies.size() || replies[j + 1] - replies[j] > ggswarm::net::kDhtQuietS) {
        took = std::min(took, replies[j] + ggswarm::net::kDhtQuietS);
        break;
      }
    }
    // Each counted reply: up to kDhtPeersPerReply of the announcements; DhtLookup asks at
    // most 256 of them.
    std::set<int> got;
    for (size_t j = 0; j < counted; ++j) {
      std::vector<int> a = announced;
      std::shuffle(a.begin(), a.end(), rng);
      if (a.size() > kDhtPeersPerReply) a.resize(kDhtPeersPerReply);
      got.insert(a.begin(), a.end());
    }
    std::vector<int> v(got.begin(), got.end());
    std::shuffle(v.begin(), v.end(), rng);
    if (v.size() > 256) v.resize(256);
    return {took, v};
  }

  // How long lane's Hello to host h takes: a round trip (a host that closed refuses at once),
  // or the Hello's whole deadline for one that stopped answering.
  double Hello(int lane, int h) const {
    const Host& x = hosts[h];
    if (!x.alive && x.silent) return ggswarm::net::kHelloDeadlineS;
    return x.rtt_to[lane] / 1e3 + sc.call_overhead_ms / 1e3;
  }

  // What SwarmChain does to find the stages again (Lookup, PickChain): the seconds it takes,
  // and the live hosts it found. On the DHT (DhtLookup): GetPeers, then Hello to every host
  // given and every host seen before (all at once), leaving out those found dead, until the
  // answers cover the layers and as long again (kStragglerS to kStragglerMaxS), or all have
  // answered;
  // hosts whose Hello ran into its deadline are found dead. Else: one Lookup call to a peer,
  // which knows the live hosts (gossip).
  std::pair<double, std::vector<int>> Lookup(int lane) {
    Lane& l = lanes[lane];
    if (!sc.dht) return {sc.rtt_ms_median / 1e3 + sc.call_overhead_ms / 1e3, Live()};
    auto [took, given] = GetPeers(lane);
    std::set<int> ask(given.begin(), given.end());
    ask.insert(l.seen.begin(), l.seen.end());
    std::vector<std::pair<double, int>> answers;  // when each asked host is done
    for (int h : ask)
      if (!l.dead.count(h)) answers.push_back({Hello(lane, h), h});
    std::sort(answers.begin(), answers.end());
    double hello = answers.empty() ? 0 : answers.back().first;
    std::vector<std::pair<int, int>> ranges;
    for (const auto& [t, h] : answers) {
      if (!hosts[h].alive) continue;
      ranges.push_back({hosts[h].first, hosts[h].end});
      if (ggswarm::net::CoversLayers(ranges, sc.model.n_layer)) {
        hello = std::min(
            hello, t + std::clamp(t, ggswarm::net::kStragglerS, ggswarm::net::kStragglerMaxS));
        break;
      }
    }
    std::vector<int> found;
    for (const auto& [t, h] : answers) {
      if (t > hello) break;
      if (hosts[h].alive) {
        found.push_back(h);
        l.seen.insert(h);
      } else if (hosts[h].silent) {
        l.dead.insert(h);
      }
    }
    return {took + hello, found};
  }

  // The lane's next step: a prompt (its first) or one token of each sequence.
  void Send(int lane) {
    Lane& l = lanes[lane];
    if (now >= end) return;
    const int tokens = l.pos == 0 ? sc.prompt_tokens : 1;
    Arrive(lane, Job{lane, 0, tokens, sc.lanes_of, l.epoch},
           now + OneWay(hosts[l.chain[0]].rtt_to[lane], tokens * sc.lanes_of));
  }

  void Arrive(int lane, Job j, double t) {
    At(t, [this, lane, j] {
      Lane& l = lanes[lane];
      if (j.epoch != l.epoch) return;
      Host& h = hosts[l.chain[j.hop]];
      if (!h.alive) return Fail(lane, j.epoch, l.chain[j.hop]);
      h.queue.push_back(j);
      Schedule(l.chain[j.hop]);
    });
  }

  // A host runs every job waiting (single tokens up to 64 of them) as one step.
  void Schedule(int id) {
    Host& h = hosts[id];
    if (h.scheduled || h.queue.empty()) return;
    h.scheduled = true;
    At(std::max(now, h.busy_until), [this, id] {
      Host& h = hosts[id];
      h.scheduled = false;
      if (!h.alive || h.queue.empty()) return;
      std::vector<Job> batch;
      int singles = 0, prompt = 0;
      for (auto it = h.queue.begin(); it != h.queue.end();) {
        const int n = it->tokens * it->seqs;
        // A step takes up to 64 single tokens and 512 positions in all (--max-batch).
        if ((it->tokens == 1 && singles + n > 64) ||
            (it->tokens > 1 && prompt > 0 && singles + prompt + n > 512)) {
          ++it;
          continue;
        }
        (it->tokens == 1 ? singles : prompt) += n;
        batch.push_back(*it);
        it = h.queue.erase(it);
      }
      const int layers = h.end - h.first;
      const double took = layers * ((singles ? StepSeconds(sc.model, singles) : 0) +
                                    prompt * sc.model.prompt_token_s);
      h.busy_until = now + took;
      h.running = batch;
      At(h.busy_until, [this, id, batch] {
        hosts[id].running.clear();
        for (const Job& j : batch) Done(id, j);
        Schedule(id);
      });
    });
  }

  void Done(int id, const Job& j) {
    Lane& l = lanes[j.lane];
    if (j.epoch != l.epoch || !hosts[id].alive) return;
    if (j.hop + 1 < static_cast<int>(l.chain.size())) {
      Job next = j;
      next.hop++;
      // Pushed to the next stage: a one-way trip between two hosts.
      Arrive(j.lane, next,
             now + OneWay(PairRtt(id, l.chain[next.hop]), j.tokens * j.seqs, hosts[id].mbit_s));
      return;
    }
    // Logits back to the client: n_vocab floats, small beside the round trip at these rates.
    At(now + OneWay(hosts[id].rtt_to[j.lane], 0),
       [this, lane = j.lane, epoch = j.epoch, t = j.tokens] {
         Lane& l = lanes[lane];
         if (epoch != l.epoch) return;
         l.pos += t;
         if (l.last_token >= 0 && now - l.last_token > 0) tpot.push_back(now - l.last_token);
         l.last_token = now;
         l.tokens += sc.lanes_of;
         if (++l.generated >= sc.gen_tokens) {  // the request is done: the next one starts
           l.generated = 0;
           l.pos = 0;
           l.last_token = -1;
         }
         Send(lane);
       });
  }

  // Lane `lane` meets host `id` gone: it notices at once (a closed connection) or when a
  // keepalive ping goes unanswered (a host that stopped answering), finds the stages again,
  // builds a new chain and replays its sequences as SwarmChain does (Rebuild).
  void Fail(int lane, uint64_t epoch, int id) {
    Lane& l = lanes[lane];
    if (epoch != l.epoch || l.recovering_since >= 0) return;
    l.epoch++;  // jobs in flight are lost
    l.recovering_since = now;
    l.failovers++;
    l.dead.insert(id);
    const double noticed = hosts[id].silent ? sc.silent_s : hosts[id].rtt_to[lane] / 1e3;
    At(now + noticed, [this, lane] { Rebuild(lane, 1); });
  }

  void Rebuild(int lane, int attempt) {
    Lane& l = lanes[lane];
    auto [took, found] = Lookup(lane);
    if (!Plan(lane, found)) {
      // A gap: BuildChain looks on the DHT again, up to three times; then the client tries
      // again a little later.
      const bool again = sc.dht && attempt < 3;
      At(now + took + (again ? 0 : 5),
         [this, lane, attempt, again] { Rebuild(lane, again ? attempt + 1 : 1); });
      return;
    }
    // PickStage: at each position, every stage that starts there is asked Hello at once;
    // then OpenSessions: one call per stage and sequence, in turn.
    double pick = 0;
    for (int h : l.chain) {
      double slowest = 0;
      for (int x : found)
        if (hosts[x].first == hosts[h].first) slowest = std::max(slowest, Hello(lane, x));
      pick += slowest + Hello(lane, h) * sc.lanes_of;
    }
    finding.push_back(took + pick);
    // As SwarmChain::Recover replays: each sequence of the lane in the calls net::ReplayCalls
    // makes of the batches it was sent in (the prompt as it was, the generated tokens in
    // runs of up to the model's exact run), the lane's sequences side by side, one pass
    // along the chain per step; a stage computes each run on its own (its own read of the
    // weights).
    const int generated = std::max(0, l.pos - sc.prompt_tokens);
    std::vector<int> sent;
    if (l.pos > 0) sent.push_back(std::min(l.pos, sc.prompt_tokens));
    sent.insert(sent.end(), static_cast<size_t>(generated), 1);
    const std::vector<int> calls = ReplayCalls(sent, sc.model.exact_run);
    double replay = 0;
    for (size_t c = 0; c < calls.size(); ++c) {
      for (int h : l.chain)
        replay += (hosts[h].end - hosts[h].first) * sc.lanes_of *
                  (c == 0 ? calls[c] * sc.model.prompt_token_s : StepSeconds(sc.model, calls[c]));
      replay += OneWay(sc.rtt_ms_median, calls[c] * sc.lanes_of, sc.mbit_s) * (l.chain.size() + 1);
    }
    At(now + took + pick + replay, [this, lane] {
      Lane& l = lanes[lane];
      recoveries.push_back(now - l.recovering_since);
      l.recovering_since = -1;
      l.last_token = -1;
      Send(lane);
    });
  }

  struct Result {
    double per_user, aggregate, p50_ms, p99_ms, failovers_per_hour, recovery_s, finding_s;
  };

  Result Run(int n_hosts, int users, double seconds) {
    end = seconds;
    const int n_lanes = (users + sc.lanes_of - 1) / sc.lanes_of;
    lanes.assign(n_lanes, Lane{});
    dht_key = rng();
    for (Lane& l : lanes) l.dht_id = rng();
    const int ranges = (sc.model.n_layer + sc.layers_per_host - 1) / sc.layers_per_host;
    for (int i = 0; i < n_hosts; ++i) AddHost((i % ranges) * sc.layers_per_host);
    std::uniform_real_distribution<double> start(0, 1);
    for (int l = 0; l < n_lanes; ++l) {
      if (!Plan(l, Live())) return {};
      At(start(rng), [this, l] { Send(l); });
    }
    while (!events.empty() && events.top().first <= end) {
      auto [t, id] = events.top();
      events.pop();
      now = t;
      auto f = std::move(actions[id]);
      actions.erase(id);
      f();
    }
    Result r{};
    long total = 0;
    int failovers = 0;
    for (const Lane& l : lanes) total += l.tokens, failovers += l.failovers;
    r.aggregate = total / seconds;
    r.per_user = r.aggregate / users;
    std::sort(tpot.begin(), tpot.end());
    if (!tpot.empty()) {
      r.p50_ms = 1e3 * tpot[tpot.size() / 2];
      r.p99_ms = 1e3 * tpot[std::min(tpot.size() - 1, tpot.size() * 99 / 100)];
    }
    r.failovers_per_hour = failovers / (seconds / 3600.0) / n_lanes;
    // Recoveries still under way at the end count for as long as they have lasted.
    for (const Lane& l : lanes)
      if (l.recovering_since >= 0) recoveries.push_back(end - l.recovering_since);
    double sum = 0;
    for (double x : recoveries) sum += x;
    r.recovery_s = recoveries.empty() ? 0 : sum / recoveries.size();
    sum = 0;
    for (double x : finding) sum += x;
    r.finding_s = finding.empty() ? 0 : sum / finding.size();
    return r;
  }
};

void Row(const Scenario& sc, int hosts, int users, double seconds, uint64_t seed) {
  Sim s;
  s.sc = sc;
  s.rng.seed(seed);
  const auto r = s.Run(hosts, users, seconds);
  // The finding column: "-" where no chain was rebuilt (no failure, or none recovered yet).
  char finding[32] = "-";
  if (r.finding_s > 0) std::snprintf(finding, sizeof finding, "%.2f", r.finding_s);
  std::printf("| %s | %d | %d | %.2f | %.1f | %.0f | %.0f | %.2f | %.1f | %s |\n", sc.name, hosts,
              users, r.per_user, r.aggregate, r.p50_ms, r.p99_ms, r.failovers_per_hour,
              r.recovery_s, finding);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::string scenario = "home";
  int hosts = 8, users = 16;
  double seconds = 1800;
  uint64_t seed = 1;
  bool table = false;
  std::vector<double> measured;  // --measured S1,S2,S4,S8,S16,S32,S64,PROMPT (whole model, s)
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--scenario")
      scenario = next();
    else if (a == "--hosts")
      hosts = std::stoi(next());
    else if (a == "--users")
      users = std::stoi(next());
    else if (a == "--seconds")
      seconds = std::stod(next());
    else if (a == "--seed")
      seed = std::stoull(next());
    else if (a == "--table")
      table = true;
    else if (a == "--measured") {
      std::string v = next();
      for (size_t p = 0; p < v.size();) {
        const size_t c = v.find(',', p);
        measured.push_back(std::stod(v.substr(p, c - p)));
        p = c == std::string::npos ? v.size() : c + 1;
      }
    } else {
      std::fprintf(stderr,
                   "usage: swarm_sim [--scenario here|here-20ms|lan|datacentre|home|home-churn] "
                   "[--hosts N] [--users N] [--seconds S] [--seed N] [--measured ...] [--table]\n");
      return 2;
    }
  }
  std::printf(
      "| scenario | hosts | users | tok/s per user | aggregate tok/s | TPOT p50 ms | "
      "TPOT p99 ms | failovers per user-hour | mean recovery s | of which finding stages s "
      "|\n|---|---|---|---|---|---|---|---|---|---|\n");
  if (table) {
    for (const char* name : {"datacentre", "lan", "home", "home-churn"})
      for (int h : {4, 16, 64})
        for (int u : {1, 16, 64, 256}) Row(Get(name), h, u, seconds, seed);
    // Thousands of peers: hosts and users ten times the grid's largest.
    Row(Get("home-churn"), 1024, 2560, seconds, seed);
    return 0;
  }
  Scenario sc = Get(scenario);
  if (scenario.rfind("here", 0) == 0) {
    if (measured.size() != 8) {
      std::fprintf(stderr, "--scenario here needs --measured (bench/swarm_sim.sh makes it)\n");
      return 2;
    }
    for (int i = 0; i < 7; ++i) sc.model.step_s[i] = measured[i] / sc.model.n_layer;
    sc.model.prompt_token_s = measured[7] / sc.model.n_layer;
    // The server's lanes: one per stage, the sequences split between them.
    sc.lanes_of = std::max(1, users / 2);
  }
  Row(sc, hosts, users, seconds, seed);
  return 0;
}
