#!/usr/bin/env bash
# Real clients against `ggswarm server` on a model of ../shared: OpenAI's npm client (v6),
# curl -N reading the event stream, and the chat page in headless Chromium.
# Usage: clients_test.sh GGSWARM_BINARY SHARED_DIR NODE_DIR
# Exits 77 (skipped) when ../shared or the npm packages (scripts/install-node-deps.sh) or
# Chromium are missing.
set -euo pipefail
bin=$1 shared=$2 node_dir=$3
here=$(cd "$(dirname "$0")" && pwd)
model=$shared/models/stories260K-q8_0.gguf
if [ ! -f "$model" ]; then echo "skipped: ../shared/models is absent"; exit 77; fi
if [ ! -d "$node_dir/node_modules/openai" ]; then
  echo "skipped: the npm packages are not installed (scripts/install-node-deps.sh $node_dir)"; exit 77
fi
work=$(mktemp -d)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
# The server's output comes through a pipe, read until it says where it listens (at most a
# minute: `read -t` waits for each line, no polling).
mkfifo "$work/out"
"$bin" server "$model" --port 0 --parallel 4 --chat-template chatml -t 2 >"$work/out" 2>"$work/err" &
server_pid=$!
exec 3<"$work/out"
base=
while IFS= read -r -t 60 line <&3; do
  case $line in "listening on http:"*) base=${line#listening on }; break ;; esac
done
[ -n "$base" ] || { echo "the server did not say it was listening:"; cat "$work/err"; exit 1; }
echo "server at $base"

# curl -N: the stream arrives as server-sent events, chunk by chunk, ending with [DONE].
curl -sSN "$base/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":40,"temperature":0,"stream":true}' \
  >"$work/sse"
grep -q '^data: {.*"object":"chat.completion.chunk"' "$work/sse" || { echo "no chunks"; cat "$work/sse"; exit 1; }
tail -n 2 "$work/sse" | grep -q '^data: \[DONE\]$' || { echo "no [DONE] at the end"; exit 1; }
streamed=$(sed -n 's/^data: \({.*}\)$/\1/p' "$work/sse" | jq -j '.choices[0].delta.content // ""')
whole=$(curl -sS "$base/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":40,"temperature":0}' |
  jq -j '.choices[0].message.content')
[ "$streamed" = "$whole" ] || { echo "curl stream '$streamed' != whole '$whole'"; exit 1; }
printf '%s' "$whole" >"$work/answer"
echo "curl -N: $(grep -c '^data: ' "$work/sse") events, the same text as the whole answer"

# The scripts run beside their node_modules, where Node's module resolution finds them.
cp "$here/openai_client.mjs" "$here/browser.mjs" "$node_dir/"
node "$node_dir/openai_client.mjs" "$base" "$shared/golden/stories260K-q8_0.p1.json"

chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then echo "skipped: no Chromium at $chromium (apt-get install chromium)"; exit 77; fi
CHROMIUM=$chromium node "$node_dir/browser.mjs" "$base" "$work/answer"
echo "all client checks passed"
