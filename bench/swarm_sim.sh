#!/usr/bin/env bash
# The swarm simulator (bench/swarm_sim.cpp), checked against this machine and then run at
# scale (docs/scaling.md, "A swarm of hundreds, simulated"):
#   1. this machine's step costs for one thread: `ggswarm bench -t 1` on a tinyllama-1.1b
#      Q8_0 model (made by `ggswarm synth`): tg for one token, pp of B tokens for a step of B,
#      pp of 128 for a prompt's token;
#   2. the simulated 2-stage chain (1 thread each) served to 1, 4, 8 and 16 clients in 2
#      lanes, on loopback and with 20 ms round trips, beside what bench/pipeline_bench.sh
#      measured (docs/scaling.md);
#   3. the 70B Q4_K_M grid: datacentre, LAN, home broadband with and without churn, 4-64
#      hosts, 1-256 users (30 simulated minutes each).
#   bench/swarm_sim.sh      MODEL=path.gguf, WORK=dir
set -euo pipefail
cd "$(dirname "$0")/.."
G=${GGSWARM:-build/ggswarm}
SIM=${SIM:-build/bench/swarm_sim}
[ -x "$G" ] && [ -x "$SIM" ] || scripts/build.sh build
WORK=${WORK:-/tmp/ggswarm-sim-bench}
mkdir -p "$WORK"
MODEL=${MODEL:-$WORK/tinyllama-1.1b-Q8_0.gguf}
[ -f "$MODEL" ] || "$G" synth "$MODEL" --preset tinyllama-1.1b --type Q8_0 >/dev/null
field() { jq -r ".$1.mean"; }
tg=$("$G" bench "$MODEL" -t 1 -p 1 -n 32 -r 2 --json | field tg)
steps="$(awk "BEGIN { print 1 / $tg }")"
for b in 2 4 8 16 32 64; do
  pp=$("$G" bench "$MODEL" -t 1 -p $b -n 1 -r 2 --json | field pp)
  steps="$steps,$(awk "BEGIN { print $b / $pp }")"
done
pp128=$("$G" bench "$MODEL" -t 1 -p 128 -n 1 -r 1 --json | field pp)
steps="$steps,$(awk "BEGIN { print 1 / $pp128 }")"
echo "this machine, 1 thread, whole model, seconds per step of 1,2,4,...,64 tokens, per prompt token: $steps"
echo
echo "Simulated 2-stage chain (measured by bench/pipeline_bench.sh, docs/scaling.md: loopback"
echo "27.0 / 57.7 / 97.7 / 112.0 tok/s, 20 ms: 12.7 / 37.6 / 61.2 / 72.7 at 1 / 4 / 8 / 16 clients):"
for sc in here here-20ms; do
  for u in 1 4 8 16; do
    "$SIM" --scenario $sc --hosts 2 --users $u --seconds 120 --measured "$steps" | tail -1
  done
done
echo
"$SIM" --table --seconds 1800
