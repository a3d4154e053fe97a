// The chat page served at /: plain HTML and script, compiled in (no build step, no CDN).
#include "api/server.h"

namespace ggswarm::api {

const char* ChatPageHtml() {
  return R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ggswarm chat</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;max-width:46rem;margin:0 auto;padding:1rem;background:#fafafa}
header{display:flex;justify-content:space-between;align-items:baseline}
#log{min-height:50vh}
.msg{white-space:pre-wrap;padding:.5rem .75rem;margin:.5rem 0;border-radius:.5rem}
.user{background:#dbeafe}.assistant{background:#fff;border:1px solid #ddd}
.error{background:#fee2e2}
form{display:flex;gap:.5rem}textarea{flex:1;font:inherit;padding:.5rem}
#stats{color:#666;font-size:.85rem}
</style></head>
<body>
<header><h1>ggswarm</h1><span id="model">…</span></header>
<div id="log"></div>
<form id="form"><textarea id="input" rows="2" placeholder="Say something"></textarea>
<button id="send" type="submit">Send</button></form>
<p id="stats"></p>
<script>
const log = document.getElementById('log'), input = document.getElementById('input');
const send = document.getElementById('send'), stats = document.getElementById('stats');
const messages = [];
// Sampling settings from the page's address (?temperature=0&max_tokens=40), as numbers.
const settings = {};
for (const [k, v] of new URLSearchParams(location.search))
  if (['temperature', 'max_tokens', 'top_p', 'top_k', 'seed'].includes(k)) settings[k] = Number(v);
let model = '';
fetch('/v1/models').then(r => r.json()).then(j => {
  model = j.data[0].id; document.getElementById('model').textContent = model;
}).catch(() => {});
function add(role, text) {
  const d = document.createElement('div');
  d.className = 'msg ' + role; d.textContent = text; log.appendChild(d); return d;
}
document.getElementById('form').addEventListener('submit', async e => {
  e.preventDefault();
  const text = input.value.trim(); if (!text) return;
  input.value = ''; send.disabled = true;
  messages.push({role: 'user', content: text}); add('user', text);
  const out = add('assistant', ''); out.dataset.done = 'false';
  const t0 = performance.now(); let first = 0, n = 0, answer = '';
  try {
    const r = await fetch('/v1/chat/completions', {method: 'POST',
      headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({...settings, messages, stream: true, stream_options: {include_usage: true}})});
    if (!r.ok) throw new Error((await r.json()).error.message);
    const reader = r.body.getReader(), dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const {value, done} = await reader.read(); if (done) break;
      buf += dec.decode(value, {stream: true});
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const line = buf.slice(0, i); buf = buf.slice(i + 2);
        if (!line.startsWith('data: ')) continue;
        const data = line.slice(6); if (data === '[DONE]') continue;
        const j = JSON.parse(data);
        if (j.error) throw new Error(j.error.message);
        const c = j.choices && j.choices[0] && j.choices[0].delta && j.choices[0].delta.content;
        if (c) { if (!first) first = performance.now(); answer += c; out.textContent = answer; }
        if (j.usage) n = j.usage.completion_tokens;
      }
    }
    const secs = (performance.now() - (first || t0)) / 1000;
    stats.textContent = n + ' tokens, ' + (secs > 0 ? (n / secs).toFixed(1) : '–') + ' tokens/s';
    messages.push({role: 'assistant', content: answer});
  } catch (err) {
    out.className = 'msg error'; out.textContent = String(err.message || err);
    messages.pop();
  }
  out.dataset.done = 'true'; send.disabled = false;
});
</script></body></html>
)HTML";
}

}  // namespace ggswarm::api
