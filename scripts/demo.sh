#!/usr/bin/env bash
# The main job on data ggswarm makes itself: a random model of TinyLlama-1.1B's shapes (2 of
# its 22 layers, Q8_0, about 234 MB) is made, fragmented, verified and put back together, and
# text is generated straight from its fragments (random weights: the text is noise). Then a
# local peer seeds the fragments and they are fetched back from it by info-hash, and two
# local stages, each fetching only its own layer, generate the same text between them. Where
# ../shared/models is present, a trained TinyStories model is fragmented and tells a story
# from its fragments too.
set -euo pipefail
cd "$(dirname "$0")/.."
ggswarm=build/ggswarm
work=${GGSWARM_DEMO_DIR:-out/demo}
rm -rf "$work"
mkdir -p "$work"
set -x
$ggswarm synth "$work/tinyllama-2l.Q8_0.gguf" --preset tinyllama-1.1b --n-layer 2 --type Q8_0 --seed 1
$ggswarm inspect "$work/tinyllama-2l.Q8_0.gguf" | sed -n 1,3p
$ggswarm fragment "$work/tinyllama-2l.Q8_0.gguf" "$work/fragments"
$ggswarm verify "$work/fragments"
$ggswarm reassemble "$work/fragments" "$work/reassembled.gguf"
cmp "$work/tinyllama-2l.Q8_0.gguf" "$work/reassembled.gguf"
$ggswarm run "$work/fragments" -p "Hello" -n 16 --temp 0
set +x
# The swarm: a peer seeds the fragments on 127.0.0.1 (BitTorrent v2; nothing reaches
# beyond this machine), and a fetch by info-hash gets them back, all or only some layers.
infohash=$(sed -n 's/^info-hash \([0-9a-f]*\)$/\1/p' <($ggswarm torrent "$work/fragments" --force))
$ggswarm peer --seed "$work/fragments" >"$work/peer.log" 2>&1 &
peer=$!
trap 'kill $peer 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do grep -q '^seeding ' "$work/peer.log" && break; sleep 0.1; done
port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/peer.log")
set -x
$ggswarm fetch "$infohash" "$work/fetched" --peer "127.0.0.1:$port"
$ggswarm verify "$work/fetched"
$ggswarm fetch "$infohash" "$work/layer0" --peer "127.0.0.1:$port" --layers 0 --with-embedding
$ggswarm verify "$work/layer0"
$ggswarm run "$work/fetched" -p "Hello" -n 16 --temp 0
set +x
# Distributed inference: two stages, each fetching only its own layer from the peer, serve
# the model between them; a client chains them and gets the local run's text.
$ggswarm serve "$infohash" --fetch-from "127.0.0.1:$port" --cache "$work/stage0" --layers 0-0 \
  >"$work/stage0.log" 2>&1 &
stage0=$!
trap 'kill $peer $stage0 ${stage1:-} 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do grep -q '^serving ' "$work/stage0.log" && break; sleep 0.1; done
addr0=$(sed -n 's/.* at \(127\.0\.0\.1:[0-9]*\) .*/\1/p' "$work/stage0.log")
$ggswarm serve "$infohash" --fetch-from "127.0.0.1:$port" --cache "$work/stage1" --layers 1-1 \
  --peer "$addr0" >"$work/stage1.log" 2>&1 &
stage1=$!
for _ in $(seq 1 600); do grep -q '^serving ' "$work/stage1.log" && break; sleep 0.1; done
sleep 0.5
grep '^serving ' "$work/stage0.log" "$work/stage1.log"
set -x
# The statistics (stderr) are shown after the text, not in the middle of what tee prints.
$ggswarm run "swarm://$addr0/" -p "Hello" -n 16 --temp 0 2>"$work/swarm.err" | tee "$work/swarm.txt"
cat "$work/swarm.err" >&2
$ggswarm run "$work/tinyllama-2l.Q8_0.gguf" -p "Hello" -n 16 --temp 0 2>/dev/null | tee "$work/local.txt"
cmp "$work/swarm.txt" "$work/local.txt"
set +x
echo "OK: the two-stage swarm wrote what the local run wrote."
kill $peer $stage0 $stage1
stories=../shared/models/stories260K-f32.gguf
if [ -f "$stories" ]; then
  set -x
  $ggswarm fragment "$stories" "$work/stories"
  $ggswarm run "$work/stories" -p "Once upon a time" -n 64 --temp 0
  set +x
fi
# Python: the same fragments through `import ggswarm` (built into build/python).
if [ -f build/python/ggswarm/__init__.py ] && /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
  set -x
  PYTHONPATH=build/python /usr/bin/python3 -c '
import sys, ggswarm
model = ggswarm.load_model(sys.argv[1])
emb = model.get_tensor("token_embd.weight", rows=slice(0, 4))
print(f"{model}: token_embd.weight rows 0-3 {emb.shape} {emb.dtype}, first values {emb[1, :3]}")
print(repr(ggswarm.Bridge(sys.argv[1]).generate("Hello", max_tokens=16, temperature=0)))' "$work/fragments"
  set +x
  PYTHONPATH=build/python /usr/bin/python3 examples/embeddings.py "$work/fragments" king --top 5
fi
# Serving: `ggswarm server` on the fragments (an OpenAI-compatible API on 127.0.0.1), and a
# real curl chat request to it. (The model has no chat template of its own: chatml is named.)
served="$work/fragments"
[ -d "$work/stories" ] && served="$work/stories"
$ggswarm server "$served" --port 0 --parallel 4 --chat-template chatml >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do grep -q '^listening on ' "$work/server.log" && break; sleep 0.1; done
url=$(sed -n 's/^listening on \(http:[^ ]*\)$/\1/p' "$work/server.log")
set -x
curl -sS "$url/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"messages":[{"role":"user","content":"Tell me a story."}],"max_tokens":48,"temperature":0}' |
  tee "$work/chat.json" | jq .
set +x
jq -e '.choices[0].message.content | length > 0' "$work/chat.json" >/dev/null
echo "OK: ggswarm server answered a chat request at $url (the chat page is at $url/)."
kill $server
echo
echo "fragments: $(ls "$work/fragments" | grep -c '\.dat$') files (gguf_header.dat included) + manifest.json in $work/fragments"
sha256sum "$work/tinyllama-2l.Q8_0.gguf" "$work/reassembled.gguf"
echo "OK: the reassembled file is byte-identical to the original."
