#!/usr/bin/env bash
# How long a client of a swarm found on the DHT takes to rebuild its chain when the stage it
# uses stops answering (SIGSTOP) or dies (SIGKILL), on loopback: a private DHT of the stages'
# own nodes, stages of layers 0, 1 (two of them) and 2 of a 3-layer model, and
# `ggswarm run dht://ID`. Prints, for each run, the rebuild time the client logs ("chain
# rebuilt: ... (X s, ...)": from the failure's notice to the replay's end), which the swarm
# simulator models as GetPeers (kDhtQuietS after the last reply) + the Hellos + the replay
# (docs/scaling.md, "The directory"). With --ghost, one more stage (of layer 2) joins and is
# stopped before the client starts: an announcement that no longer answers, as a host that
# went silent leaves on the DHT for up to 45 minutes.
#   bench/dht_failover.sh [--ghost] [RUNS]      (each run, each way; default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
G=${GGSWARM:-build/ggswarm}
[ -x "$G" ] || scripts/build.sh build
ghost=0
[ "${1:-}" = --ghost ] && { ghost=1; shift; }
runs=${1:-3}
work=$(mktemp -d /tmp/ggswarm-dht-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
model=$work/m.gguf
"$G" synth "$model" --preset tinyllama-1.1b --n-layer 3 --n-vocab 4000 --type Q8_0 --seed 5 \
  --name dhtbench >/dev/null
id=$(sha256sum "$model" | cut -c1-64)

# Waits (up to 60 s) until FILE has a line matching REGEX; prints the first group.
await() {
  for _ in $(seq 600); do
    local m
    m=$(sed -nE "s/.*$2.*/\\1/p" "$1" | head -1)
    [ -n "$m" ] && { echo "$m"; return 0; }
    sleep 0.1
  done
  echo "timed out waiting for /$2/ in $1" >&2
  return 1
}

one() {  # SIGNAL RUN
  local d="$work/$1-$2" s0 s1 s1b s2 node run used
  mkdir -p "$d"
  pids=()
  "$G" serve "$model" --layers 0-0 -t 1 --dht >"$d/s0.log" 2>&1 & s0=$!
  disown; pids+=($s0)
  node=$(await "$d/s0.log" "DHT node on (127\\.0\\.0\\.1:[0-9]+)")
  "$G" serve "$model" --layers 1-1 -t 1 --dht --dht-bootstrap "$node" >"$d/s1.log" 2>&1 & s1=$!
  disown
  "$G" serve "$model" --layers 1-1 -t 1 --dht --dht-bootstrap "$node" >"$d/s1b.log" 2>&1 & s1b=$!
  disown
  "$G" serve "$model" --layers 2-2 -t 1 --dht --dht-bootstrap "$node" >"$d/s2.log" 2>&1 & s2=$!
  disown
  pids+=($s1 $s1b $s2)
  local want=4 g=
  if [ $ghost = 1 ]; then
    "$G" serve "$model" --layers 2-2 -t 1 --dht --dht-bootstrap "$node" >"$d/g.log" 2>&1 & g=$!
    disown; pids+=($g); want=5
  fi
  # Until the DHT gives every stage.
  for _ in $(seq 60); do
    [ "$("$G" stages "dht://$id" --dht-bootstrap "$node" 2>/dev/null | grep -c '127.0.0.1:')" -ge $want ] && break
    sleep 1
  done
  [ -n "$g" ] && kill -STOP "$g"
  "$G" run "dht://$id" --dht-bootstrap "$node" -p "the swarm" -n 2000 --temp 0 --ignore-eos \
    >"$d/run.out" 2>"$d/run.err" & run=$!
  disown; pids+=($run)
  for _ in $(seq 600); do
    [ "$(wc -c <"$d/run.out")" -ge 200 ] && break
    sleep 0.1
  done
  if grep -q "session " "$d/s1.log"; then used=$s1; else used=$s1b; fi
  kill -"$1" "$used"
  await "$d/run.err" "chain rebuilt: .*\\(([0-9.]+ s, [0-9]+ tokens) of" >/dev/null || true
  printf '%s%s\trun %d\t%s\n' "$1" "$([ $ghost = 1 ] && echo ' (ghost)')" "$2" "$(grep -oE 'chain rebuilt: .*' "$d/run.err" | sed -E 's/.*\((.*)\)/\1/')"
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
}

for sig in STOP KILL; do
  for r in $(seq "$runs"); do one "$sig" "$r"; done
done
