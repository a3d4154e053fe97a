#!/usr/bin/env bash
# Fetch speed over loopback (issue 5's measure): a tinyllama-1.1b Q8_0 model (1.17 GB, made
# by `ggswarm synth`) fetched from one seed and from two, by .torrent file and by info-hash.
# Prints MB/s (whole fetch, end to end) and the CPU seconds of the fetcher and the seeds.
#   bench/fetch_bench.sh [--quick] [-r N]
#   MODEL=path.gguf   fetch this model instead (default: synthesized into $WORK)
#   WORK=dir          scratch space (default /tmp/ggswarm-fetch-bench); OUT=dir for fetch.json
set -euo pipefail
cd "$(dirname "$0")/.."
reps=3
quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; reps=1 ;;
    -r) reps=$2; shift ;;
    *) echo "usage: $0 [--quick] [-r N]" >&2; exit 2 ;;
  esac
  shift
done
G=${GGSWARM:-build/ggswarm}
[ -x "$G" ] || scripts/build.sh build
WORK=${WORK:-/tmp/ggswarm-fetch-bench}
OUT=${OUT:-$WORK}
mkdir -p "$WORK" "$OUT"
if [ -z "${MODEL:-}" ]; then
  if [ $quick = 1 ]; then preset=tiny; else preset=tinyllama-1.1b; fi
  MODEL=$WORK/$preset-Q8_0.gguf
  [ -f "$MODEL" ] || "$G" synth "$MODEL" --preset $preset --type Q8_0 >/dev/null
fi
rm -rf "$WORK/frag" "$WORK/out"
"$G" fragment "$MODEL" "$WORK/frag" >"$WORK/fragment.log"
ih=$(sed -n 's/.*info-hash \([0-9a-f]\{64\}\).*/\1/p' "$WORK/fragment.log" | head -1)
bytes=$(stat -c %s "$MODEL")
tck=$(getconf CLK_TCK)

seeds=()
cleanup() { for p in "${seeds[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
calc() { awk "BEGIN { printf \"%.4f\", $1 }"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

"$G" peer --seed "$WORK/frag" >"$WORK/seed1.log" 2>&1 &
pid1=$!
seeds+=($pid1)
"$G" peer --seed "$WORK/frag" >"$WORK/seed2.log" 2>&1 &
pid2=$!
seeds+=($pid2)
port_of() {  # waits until the seed in log $1 seeds, then prints its port
  for _ in $(seq 1 600); do grep -q '^seeding ' "$1" && break; sleep 0.1; done
  sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$1"
}
port1=$(port_of "$WORK/seed1.log")
port2=$(port_of "$WORK/seed2.log")

printf '%-10s %-6s %8s %10s %12s %12s\n' ref seeds "MB/s" "wall s" "fetch CPU s" "seeds CPU s"
json="["
for ref_kind in torrent info-hash; do
  ref=$WORK/frag/model.torrent
  [ $ref_kind = info-hash ] && ref=$ih
  for n in 1 2; do
    peers="--peer 127.0.0.1:$port1"
    [ $n = 2 ] && peers="$peers --peer 127.0.0.1:$port2"
    sum_rate=0 sum_wall=0 sum_cpu=0 sum_seed=0
    for _ in $(seq 1 "$reps"); do
      rm -rf "$WORK/out"
      s0=$(( $(cpu_ticks "$pid1") + $(cpu_ticks "$pid2") ))
      TIMEFORMAT='%R %U %S'
      t=$( { time "$G" fetch "$ref" "$WORK/out" $peers >"$WORK/fetch.log" 2>&1 ; } 2>&1 )
      s1=$(( $(cpu_ticks "$pid1") + $(cpu_ticks "$pid2") ))
      read -r wall user sys <<<"$t"
      grep -q '^fetched ' "$WORK/fetch.log" || { cat "$WORK/fetch.log" >&2; exit 1; }
      sum_rate=$(calc "$sum_rate + $bytes / 1000000 / $wall")
      sum_wall=$(calc "$sum_wall + $wall")
      sum_cpu=$(calc "$sum_cpu + $user + $sys")
      sum_seed=$(calc "$sum_seed + ($s1 - $s0) / $tck")
    done
    rate=$(calc "$sum_rate / $reps")
    wall=$(calc "$sum_wall / $reps")
    cpu=$(calc "$sum_cpu / $reps")
    seed=$(calc "$sum_seed / $reps")
    printf '%-10s %-6s %8.0f %10.2f %12.2f %12.2f\n' $ref_kind $n "$rate" "$wall" "$cpu" "$seed"
    json="$json{\"ref\":\"$ref_kind\",\"seeds\":$n,\"mb_per_s\":$rate,\"wall_s\":$wall,\"fetch_cpu_s\":$cpu,\"seeds_cpu_s\":$seed,\"bytes\":$bytes,\"repetitions\":$reps},"
  done
done
echo "${json%,}]" >"$OUT/fetch.json"
"$G" verify "$WORK/out" | tail -1
echo "model: $MODEL ($bytes bytes); results in $OUT/fetch.json"
