#!/usr/bin/env bash
# The swarm page of `ggswarm server swarm://…` in headless Chromium: a 3-stage swarm of a
# model made here (ggswarm synth), all drawn; one stage killed, gone from the page within its
# refresh and its layers a gap (swarm_page.mjs).
# Usage: swarm_page_test.sh GGSWARM_BINARY NODE_DIR
# Exits 77 (skipped) when the npm packages (scripts/install-node-deps.sh) or Chromium are
# missing.
set -euo pipefail
bin=$1 node_dir=$2
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -d "$node_dir/node_modules/puppeteer-core" ]; then
  echo "skipped: the npm packages are not installed (scripts/install-node-deps.sh $node_dir)"; exit 77
fi
chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then echo "skipped: no Chromium at $chromium (apt-get install chromium)"; exit 77; fi
work=$(mktemp -d)
# (start runs in a command substitution's subshell: the processes are known by their files)
cleanup() { for p in "$work"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
"$bin" synth "$work/m.gguf" --preset tiny --n-layer 6 --type Q8_0 --name swarmpage >/dev/null
# Each process's output through a pipe, read until it says the line that is awaited (at most
# a minute: `read -t` waits for each line, no polling).
start() {  # NAME PATTERN ARGS…: starts `ggswarm ARGS`, prints the line matching PATTERN
  local name=$1 pattern=$2; shift 2
  mkfifo "$work/$name.out"
  "$bin" "$@" >"$work/$name.out" 2>"$work/$name.err" &
  echo $! >"$work/$name.pid"
  exec {fd}<"$work/$name.out"
  while IFS= read -r -t 60 line <&$fd; do
    case $line in $pattern*) echo "$line"; cat <&$fd >/dev/null & return 0 ;; esac
  done
  echo "$name did not start:" >&2; cat "$work/$name.err" >&2; return 1
}
addr() { sed -n 's/.* at \(127\.0\.0\.1:[0-9]*\) .*/\1/p'; }
a=$(start a "serving " serve "$work/m.gguf" --layers 0-1 -t 1 | addr)
b=$(start b "serving " serve "$work/m.gguf" --layers 2-3 -t 1 --peer "$a" | addr)
c=$(start c "serving " serve "$work/m.gguf" --layers 4-5 -t 1 --peer "$a" | addr)
# The server connects once every stage is known to the first (their announcements are in).
. "$here/wait.sh"
three_answer() { [ "$("$bin" stages "swarm://$a/" 2>/dev/null | grep -c ' ms')" -ge 3 ]; }
until_ok 30 three_answer || { "$bin" stages "swarm://$a/" >&2; echo "the first stage does not know all 3" >&2; exit 1; }
line=$(start server "listening on " server "swarm://$a/" --port 0 --parallel 2)
base=${line#listening on }
echo "server at $base; stages $a $b $c"
cp "$here/swarm_page.mjs" "$node_dir/"
CHROMIUM=$chromium node "$node_dir/swarm_page.mjs" "$base" "$(cat "$work/b.pid")" "$b" 2-3 "$a" "$b" "$c"
