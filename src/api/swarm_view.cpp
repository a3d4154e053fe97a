#include "api/swarm_view.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace ggswarm::api {

using json = nlohmann::json;

SwarmView::SwarmView(net::ChainOptions where, std::vector<const net::SwarmChain*> chains)
    : where_(std::move(where)), chains_(std::move(chains)) {
  where_.log = nullptr;
}

std::pair<int, std::string> SwarmView::Json() {
  std::lock_guard<std::mutex> l(mu_);
  const auto now = std::chrono::steady_clock::now();
  if (last_.first == 0 || now - at_ >= std::chrono::seconds(1)) {
    last_ = Build();
    at_ = now;
  }
  return last_;
}

std::pair<int, std::string> SwarmView::Build() {
  net::ChainOptions o = where_;
  if (!chains_.empty()) o.model = chains_[0]->model_id();
  // The entry peer first, then any stage seen before (the entry may be the one that died);
  // or the DHT.
  std::vector<std::string> ask = {o.address};
  for (const std::string& a : known_)
    if (a != o.address && !o.dht) ask.push_back(a);
  StatusOr<std::vector<net::StageInfo>> stages = Status::NotFound("no peer asked");
  std::string asked;
  for (const std::string& a : ask) {
    o.address = a;
    stages = net::ListStages(o);
    if (stages.ok()) {
      asked = o.dht ? "dht://" + o.model : a;
      break;
    }
  }
  if (!stages.ok())
    return {502, json{{"error",
                       {{"message", "no peer of the swarm answers: " + stages.status().message()},
                        {"type", "server_error"},
                        {"code", "swarm_unreachable"}}}}
                     .dump()};
  json doc;
  int n_layer = 0;
  std::string name;
  json list = json::array();
  std::vector<std::pair<int, int>> served;
  known_.clear();
  for (const net::StageInfo& s : *stages) {
    known_.push_back(s.address);
    if (!s.answers) continue;  // a stage gone: not drawn, its layers a gap if none else
    n_layer = std::max(n_layer, s.n_layer);
    name = s.model_name;
    served.push_back({s.first_layer, s.end_layer});
    list.push_back({{"address", s.address},
                    {"first_layer", s.first_layer},
                    {"end_layer", s.end_layer},
                    {"has_embedding", s.has_embedding},
                    {"has_head", s.has_head},
                    {"rtt_ms", s.rtt_ms},
                    {"busy", s.busy},
                    {"sessions_free", s.sessions_free},
                    {"max_sessions", s.max_sessions},
                    {"open_sessions", s.open_sessions},
                    {"kernels", s.kernels}});
  }
  // The layers no answering stage serves.
  json gaps = json::array();
  std::sort(served.begin(), served.end());
  int covered = 0;
  for (const auto& [first, end] : served) {
    if (first > covered) gaps.push_back({{"first_layer", covered}, {"end_layer", first}});
    covered = std::max(covered, end);
  }
  if (n_layer > covered) gaps.push_back({{"first_layer", covered}, {"end_layer", n_layer}});
  json chains = json::array();
  for (size_t i = 0; i < chains_.size(); ++i) {
    json hops = json::array();
    for (const net::SwarmChain::Hop& h : chains_[i]->Route())
      hops.push_back(
          {{"address", h.address}, {"first_layer", h.first_layer}, {"end_layer", h.end_layer}});
    chains.push_back({{"lane", i}, {"sequences", chains_[i]->n_seq()}, {"hops", hops}});
  }
  doc["model"] = {{"id", o.model}, {"name", name}, {"n_layer", n_layer}};
  doc["asked"] = asked;
  doc["stages"] = list;
  doc["gaps"] = gaps;
  doc["chains"] = chains;
  return {200, doc.dump()};
}

const char* SwarmPageHtml() {
  return R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ggswarm swarm</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;max-width:60rem;margin:0 auto;padding:1rem;background:#fafafa}
#layers,.row{position:relative;height:2.2rem;margin:.25rem 0}
#layers{background:#e5e7eb;border-radius:.25rem}
.gap{position:absolute;top:0;bottom:0;background:#dc2626;opacity:.85}
.tick{position:absolute;top:0;bottom:0;border-left:1px solid #fff;font-size:.65rem;color:#555;padding-left:2px}
.stage{position:absolute;top:0;bottom:0;box-sizing:border-box;border:1px solid #1e3a8a;border-radius:.25rem;
  background:#bfdbfe;font-size:.72rem;overflow:hidden;white-space:nowrap;padding:1px 4px;line-height:1rem}
.stage.inuse{background:#93c5fd;border-width:2px}
.busy{position:absolute;left:0;bottom:0;height:3px;background:#1d4ed8}
#chains li{font-family:ui-monospace,monospace;font-size:.85rem}
#error{color:#b91c1c}
small{color:#666}
</style></head>
<body>
<h1>ggswarm swarm <small id="model"></small></h1>
<p><small>Layers of the model (red: no stage serves them); below, each stage over the layers it
serves, replicas stacked (darker: a chain of this server uses it; the bar at the bottom: load).
Refreshed every <span id="every">2</span> s.</small></p>
<div id="layers"></div>
<div id="stages"></div>
<h2>Chains in use</h2>
<ul id="chains"></ul>
<p id="error"></p>
<script>
const every = Number(new URLSearchParams(location.search).get('refresh') || 2);
document.getElementById('every').textContent = every;
const pct = (a, n) => (100 * a / n) + '%';
function el(tag, cls, text) {
  const d = document.createElement(tag); if (cls) d.className = cls;
  if (text !== undefined) d.textContent = text; return d;
}
function draw(s) {
  const n = s.model.n_layer || 1;
  document.getElementById('model').textContent = (s.model.name || '') + ' · ' + s.model.n_layer +
    ' layers · ' + s.model.id.slice(0, 16);
  const layers = document.getElementById('layers'); layers.replaceChildren();
  for (let l = 0; l < n; l += Math.max(1, Math.ceil(n / 16))) {
    const t = el('span', 'tick', l); t.style.left = pct(l, n); layers.appendChild(t);
  }
  for (const g of s.gaps) {
    const d = el('div', 'gap'); d.style.left = pct(g.first_layer, n);
    d.style.width = pct(g.end_layer - g.first_layer, n);
    d.title = 'no stage serves layers ' + g.first_layer + '-' + (g.end_layer - 1);
    d.dataset.gap = g.first_layer + '-' + (g.end_layer - 1); layers.appendChild(d);
  }
  const inuse = new Set();
  for (const c of s.chains) for (const h of c.hops) inuse.add(h.address);
  // Replicas stacked: each stage on the first row where it overlaps no other.
  const rows = [];
  const box = document.getElementById('stages'); box.replaceChildren();
  for (const st of s.stages) {
    let r = rows.findIndex(row => row.every(o => o.end_layer <= st.first_layer || o.first_layer >= st.end_layer));
    if (r < 0) { rows.push([]); r = rows.length - 1; box.appendChild(el('div', 'row')); }
    rows[r].push(st);
    const d = el('div', 'stage' + (inuse.has(st.address) ? ' inuse' : ''));
    d.style.left = pct(st.first_layer, n); d.style.width = pct(st.end_layer - st.first_layer, n);
    d.dataset.address = st.address;
    d.textContent = st.address + ' · ' + st.first_layer + '-' + (st.end_layer - 1) + ' · ' +
      st.rtt_ms.toFixed(1) + ' ms · ' + Math.round(100 * st.busy) + '% busy · ' +
      st.sessions_free + '/' + st.max_sessions + ' free · ' + st.kernels;
    d.title = d.textContent;
    const b = el('div', 'busy'); b.style.width = pct(st.busy, 1); d.appendChild(b);
    box.children[r].appendChild(d);
  }
  const chains = document.getElementById('chains'); chains.replaceChildren();
  for (const c of s.chains)
    chains.appendChild(el('li', '', 'lane ' + c.lane + ' (' + c.sequences + ' sequences): ' +
      c.hops.map(h => h.first_layer + '-' + (h.end_layer - 1) + ' @ ' + h.address).join(' → ')));
}
async function refresh() {
  try {
    const r = await fetch('/v1/swarm'); const j = await r.json();
    if (!r.ok) throw new Error(j.error ? j.error.message : r.status);
    draw(j); document.getElementById('error').textContent = '';
  } catch (e) { document.getElementById('error').textContent = String(e.message || e); }
  document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
  setTimeout(refresh, every * 1000);
}
refresh();
</script></body></html>
)HTML";
}

}  // namespace ggswarm::api
