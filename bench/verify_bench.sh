#!/usr/bin/env bash
# What --verify-fraction costs (issue 26's honest computation): a 2-stage chain of a
# tinyllama-1.1b Q8_0 model (made by `ggswarm synth`; layers 0-10 and 11-21), each range
# served by 3 stages of 1 thread, all on this machine's cores; `ggswarm run swarm://…`
# greedy, a prompt of ~40 tokens and 64 generated, with F = 0, 0.05 and 0.2, 3 runs each
# (interleaved). The checks' extra work runs on the other stages: on one 2-core machine it
# competes with the chain for the same cores, so the slowdown here is its whole cost.
#   bench/verify_bench.sh [--quick]     MODEL=path.gguf, WORK=dir
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1
G=${GGSWARM:-build/ggswarm}
[ -x "$G" ] || scripts/build.sh build
WORK=${WORK:-/tmp/ggswarm-verify-bench}
mkdir -p "$WORK"
reps=3 n=64 la=0-10 lb=11-21
if [ $quick = 1 ]; then reps=1 n=16 la=0-1 lb=2-3; fi
if [ -z "${MODEL:-}" ]; then
  if [ $quick = 1 ]; then MODEL=$WORK/tiny.gguf; [ -f "$MODEL" ] || "$G" synth "$MODEL" --preset tiny --n-layer 4 --type Q8_0 >/dev/null
  else MODEL=$WORK/tinyllama-1.1b-Q8_0.gguf; [ -f "$MODEL" ] || "$G" synth "$MODEL" --preset tinyllama-1.1b --type Q8_0 >/dev/null; fi
fi
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
wait_for() { for _ in $(seq 1 1200); do grep -q "$2" "$1" && return 0; sleep 0.1; done; echo "timeout: $1" >&2; cat "$1" >&2; exit 1; }
addr_of() { sed -n 's/.* at \(127\.0\.0\.1:[0-9]*\) .*/\1/p' "$1" | head -1; }

"$G" serve "$MODEL" --layers $la -t 1 >"$WORK/a1.log" 2>&1 & pids+=($!)
wait_for "$WORK/a1.log" "serving "
first=$(addr_of "$WORK/a1.log")
for s in a2 a3 b1 b2 b3; do
  layers=$la; [ "${s:0:1}" = b ] && layers=$lb
  "$G" serve "$MODEL" --layers $layers -t 1 --peer "$first" >"$WORK/$s.log" 2>&1 & pids+=($!)
  wait_for "$WORK/$s.log" "serving "
done
until [ "$("$G" stages "swarm://$first/" | grep -c ' ms')" -ge 6 ]; do sleep 0.2; done
prompt=$(for i in $(seq 1 5); do printf 'the swarm runs one model '; done)
echo "model $(basename "$MODEL"), $n tokens generated, 3 stages per range, 1 thread each"
declare -A sum
for r in $(seq 1 $reps); do
  for f in 0 0.05 0.2; do
    out=$("$G" run "swarm://$first/" -p "$prompt" -n $n --temp 0 --ignore-eos --verify-fraction $f 2>&1 >/dev/null)
    tg=$(sed -n 's/.*generated: [0-9]* tokens, \([0-9.]*\) tok\/s.*/\1/p' <<<"$out")
    banned=$(grep -c "banned" <<<"$out" || true); [ "$banned" = 0 ] || echo "$out" | head -8
    echo "F=$f run $r: $tg tok/s (bans: $banned)"
    sum[$f]=$(awk "BEGIN { print ${sum[$f]:-0} + $tg }")
  done
done
for f in 0 0.05 0.2; do
  awk "BEGIN { m = ${sum[$f]} / $reps; b = ${sum[0]} / $reps; printf \"F=%s: %.2f tok/s, %.0f%% of F=0\n\", \"$f\", m, 100 * m / b }"
done
