#!/usr/bin/env bash
# Pipelined inference over loopback (issue 6's measure), on a tinyllama-1.1b Q8_0 model
# (1.17 GB, made by `ggswarm synth`):
#   - a local run with 2 threads against a 2-stage chain (layers 0-10 and 11-21, each stage
#     1 thread: the same 2 cores in all), greedy, prompt of ~128 tokens (pp) and 64 generated
#     tokens (tg), 3 runs each;
#   - each stage's peak resident memory against the bytes of its share of the model (the
#     stages fetch only their own fragments from a local BitTorrent seed);
#   - the time to recover when the stage in use is killed and a replica takes over;
#   - serving many users: `ggswarm server swarm://` on the 2-stage chain (1 thread each)
#     against `ggswarm server` on the local model (2 threads), 16 slots, under 1, 4, 8 and 16
#     concurrent streaming clients (bench_serve: aggregate tokens/s, time per output token
#     p50/p99), and the chain again with 20 ms of round trip on every call to a stage
#     (bench/delay_proxy.mjs in front of each stage: the kernel here has no tc netem); each
#     chain with stages pushing to each other (the default) and with --no-push.
#   bench/pipeline_bench.sh [--quick]     MODEL=path.gguf, WORK=dir, OUT=dir
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1
G=${GGSWARM:-build/ggswarm}
[ -x "$G" ] || scripts/build.sh build
WORK=${WORK:-/tmp/ggswarm-pipeline-bench}
OUT=${OUT:-$WORK}
mkdir -p "$WORK" "$OUT"
reps=3 n=64 layers_a=0-10 layers_b=11-21 repeat=21
if [ $quick = 1 ]; then reps=1 n=16 layers_a=0-1 layers_b=2-3 repeat=4; fi
if [ -z "${MODEL:-}" ]; then
  if [ $quick = 1 ]; then MODEL=$WORK/tiny.gguf; [ -f "$MODEL" ] || "$G" synth "$MODEL" --preset tiny --n-layer 4 --type Q8_0 >/dev/null
  else MODEL=$WORK/tinyllama-1.1b-Q8_0.gguf; [ -f "$MODEL" ] || "$G" synth "$MODEL" --preset tinyllama-1.1b --type Q8_0 >/dev/null; fi
fi
prompt=$(for i in $(seq 1 $repeat); do printf 'the swarm runs one model '; done)

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
wait_for() { for _ in $(seq 1 1200); do grep -q "$2" "$1" && return 0; sleep 0.1; done; echo "timeout: $1" >&2; cat "$1" >&2; exit 1; }
addr_of() { sed -n 's/.* at \(127\.0\.0\.1:[0-9]*\) .*/\1/p' "$1" | head -1; }
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }

rm -rf "$WORK/frag" "$WORK"/cache-*
"$G" fragment "$MODEL" "$WORK/frag" >"$WORK/fragment.log"
ih=$(sed -n 's/.*info-hash \([0-9a-f]\{64\}\).*/\1/p' "$WORK/fragment.log" | head -1)
"$G" peer --seed "$WORK/frag" >"$WORK/seed.log" 2>&1 & pids+=($!)
wait_for "$WORK/seed.log" '^seeding '
bt=$(sed -n 's/^listening on \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$WORK/seed.log")

"$G" serve "$ih" --fetch-from "$bt" --cache "$WORK/cache-a" --layers $layers_a -t 1 --max-sessions 17 --ctx 512 >"$WORK/a.log" 2>&1 & pid_a=$!; pids+=($pid_a)
wait_for "$WORK/a.log" '^serving '
a=$(addr_of "$WORK/a.log")
"$G" serve "$ih" --fetch-from "$bt" --cache "$WORK/cache-b" --layers $layers_b -t 1 --max-sessions 17 --ctx 512 --peer "$a" >"$WORK/b.log" 2>&1 & pid_b=$!; pids+=($pid_b)
wait_for "$WORK/b.log" '^serving '
# The same two ranges again, with 2 threads per stage: one sequence keeps one stage busy at a
# time, so these use the 2 cores as the local run does.
"$G" serve "$WORK/cache-a" --layers $layers_a -t 2 >"$WORK/c.log" 2>&1 & pids+=($!)
wait_for "$WORK/c.log" '^serving '
c=$(addr_of "$WORK/c.log")
"$G" serve "$WORK/cache-b" --layers $layers_b -t 2 --peer "$c" >"$WORK/d.log" 2>&1 & pids+=($!)
wait_for "$WORK/d.log" '^serving '
sleep 1

run_json() {  # $1: model or swarm uri, $2: threads
  "$G" run "$1" -p "$prompt" -n $n --temp 0 --ignore-eos -t "$2" --json 2>/dev/null
}
field() { jq -r "$1"; }
echo "setup                         pp tok/s   tg tok/s"
json="{"
for setup in local chain chain2; do
  pp=0 tg=0
  for _ in $(seq 1 "$reps"); do
    case $setup in
      local) j=$(run_json "$MODEL" 2) ;;
      chain) j=$(run_json "swarm://$a/" 1) ;;
      chain2) j=$(run_json "swarm://$c/" 1) ;;
    esac
    pp=$(calc "$pp + $(echo "$j" | field .timings.prompt_tokens_per_s)")
    tg=$(calc "$tg + $(echo "$j" | field .timings.generation_tokens_per_s)")
    echo "$j" | field .generated_tokens | tr -d ' \n' >"$WORK/tokens-$setup.txt"
  done
  pp=$(calc "$pp / $reps"); tg=$(calc "$tg / $reps")
  label="local, 2 threads"; [ $setup = chain ] && label="2 stages x 1 thread"
  [ $setup = chain2 ] && label="2 stages x 2 threads"
  printf '%-28s %9s %10s\n' "$label" "$pp" "$tg"
  json="$json\"$setup\":{\"pp_tokens_per_s\":$pp,\"tg_tokens_per_s\":$tg},"
  eval "pp_$setup=$pp tg_$setup=$tg"
done
cmp -s "$WORK/tokens-local.txt" "$WORK/tokens-chain.txt" && cmp -s "$WORK/tokens-local.txt" "$WORK/tokens-chain2.txt" && same=true || same=false
echo "same greedy tokens: $same"
echo "2 stages x 1 thread / local: pp $(calc "$pp_chain / $pp_local"), tg $(calc "$tg_chain / $tg_local")"
echo "2 stages x 2 threads / local: pp $(calc "$pp_chain2 / $pp_local"), tg $(calc "$tg_chain2 / $tg_local")"

hwm() { awk '/VmRSS/ {print $2 * 1024}' "/proc/$1/status"; }  # resident now, after the runs
share_a=$(du -sb --exclude='.*' "$WORK/cache-a" | cut -f1); share_b=$(du -sb --exclude='.*' "$WORK/cache-b" | cut -f1)
rss_a=$(hwm $pid_a); rss_b=$(hwm $pid_b)
echo "stage $layers_a: RSS $(calc "$rss_a / 1e6") MB for $(calc "$share_a / 1e6") MB of the model"
echo "stage $layers_b: RSS $(calc "$rss_b / 1e6") MB for $(calc "$share_b / 1e6") MB of the model"

# Serving many users: the chain through `ggswarm server swarm://` against a local server.
L=${BENCH_SERVE:-$(dirname "$G")/bench/bench_serve}
[ -x "$L" ] || GGSWARM_TARGETS=bench_serve scripts/build.sh build
wait_http() { for _ in $(seq 1 1200); do curl -sf "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
serving() {  # LABEL PORT: one warm-up, then each concurrency
  local label=$1 port=$2
  "$L" 127.0.0.1 "$port" 1 8 >/dev/null
  for c in 1 4 8 16; do
    j=$("$L" 127.0.0.1 "$port" "$c" "$n")
    printf '%-34s %3d %9.1f %9.1f %9.1f\n' "$label" "$c" "$(echo "$j" | jq .tokens_per_second)" \
      "$(echo "$j" | jq .tpot_ms_p50)" "$(echo "$j" | jq .tpot_ms_p99)"
    json="$json\"$label c=$c\":$j,"
  done
}
echo "serving (16 slots, $n tokens a request)   clients  tok/s  tpot p50  tpot p99 (ms)"
"$G" server "$MODEL" --port 18391 --parallel 16 --ctx 512 -t 2 --chat-template chatml >"$WORK/local-server.log" 2>&1 & ls_pid=$!; pids+=($ls_pid)
wait_http 18391
serving "local, 2 threads" 18391
kill $ls_pid; wait $ls_pid 2>/dev/null || true
"$G" server "swarm://$a/" --port 18392 --parallel 16 --ctx 512 --chat-template chatml >"$WORK/chain-server.log" 2>&1 & cs_pid=$!; pids+=($cs_pid)
wait_http 18392
serving "2 stages x 1 thread, 2 lanes" 18392
kill $cs_pid; wait $cs_pid 2>/dev/null || true
"$G" server "swarm://$a/" --port 18399 --parallel 16 --ctx 512 --chat-template chatml --no-push >"$WORK/chain-server-np.log" 2>&1 & cs_pid=$!; pids+=($cs_pid)
wait_http 18399
serving "same, --no-push" 18399
kill $cs_pid; wait $cs_pid 2>/dev/null || true
# The same chain with 20 ms of round trip on every call: each stage behind a proxy that holds
# each chunk 10 ms each way (bench/delay_proxy.mjs; this machine's kernel has no tc netem),
# and advertised at the proxy's address, so that every call the server makes crosses it.
"$G" serve "$WORK/cache-a" --layers $layers_a -t 1 --max-sessions 17 --ctx 512 --listen 127.0.0.1:18394 --advertise 127.0.0.1:18396 >"$WORK/na.log" 2>&1 & pids+=($!)
wait_for "$WORK/na.log" '^serving '
node bench/delay_proxy.mjs 18396 127.0.0.1:18394 10 >"$WORK/pa.log" 2>&1 & pids+=($!)
"$G" serve "$WORK/cache-b" --layers $layers_b -t 1 --max-sessions 17 --ctx 512 --listen 127.0.0.1:18395 --advertise 127.0.0.1:18397 --peer 127.0.0.1:18394 >"$WORK/nb.log" 2>&1 & pids+=($!)
wait_for "$WORK/nb.log" '^serving '
node bench/delay_proxy.mjs 18397 127.0.0.1:18395 10 >"$WORK/pb.log" 2>&1 & pids+=($!)
wait_for "$WORK/pb.log" '^listening on '
sleep 3
"$G" server "swarm://127.0.0.1:18396/" --port 18393 --parallel 16 --ctx 512 --chat-template chatml >"$WORK/delay-server.log" 2>&1 & pids+=($!)
wait_http 18393
serving "same, 20 ms round trip" 18393
"$G" server "swarm://127.0.0.1:18396/" --port 18398 --parallel 16 --ctx 512 --chat-template chatml --no-push >"$WORK/delay-server-np.log" 2>&1 & pids+=($!)
wait_http 18398
serving "same, 20 ms, --no-push" 18398

# Recovery: a replica of the second range; kill whichever the chain uses mid-generation.
"$G" serve "$ih" --fetch-from "$bt" --cache "$WORK/cache-b" --layers $layers_b -t 1 --peer "$a" >"$WORK/b2.log" 2>&1 & pid_b2=$!; pids+=($pid_b2)
wait_for "$WORK/b2.log" '^serving '
sleep 1
"$G" run "swarm://$a/" -p "$prompt" -n $((n * 2)) --temp 0 --ignore-eos -t 1 >"$WORK/rec.out" 2>"$WORK/rec.err" & run=$!
for _ in $(seq 1 600); do [ "$(wc -c <"$WORK/rec.out")" -gt 20 ] && break; sleep 0.05; done
if grep -q 'session ' "$WORK/b.log"; then kill -9 $pid_b; else kill -9 $pid_b2; fi
wait $run
recovery=$(sed -n 's/.*chain rebuilt:.*(\([0-9.]*\) s, \([0-9]*\) tokens of [0-9]* sequences replayed in \([0-9]*\) steps).*/\1 \2 \3/p' "$WORK/rec.err")
if [ -z "$recovery" ]; then
  echo "recovery: the generation ended before the stage was killed (model too small)"
  recovery="null null null"
fi
read -r rec_s rec_tokens rec_calls <<<"$recovery"
[ "$rec_s" = null ] || echo "recovery after a killed stage: $rec_s s, replaying $rec_tokens tokens in $rec_calls steps"
json="$json\"same_tokens\":$same,\"stage_a\":{\"layers\":\"$layers_a\",\"rss_bytes\":$rss_a,\"share_bytes\":$share_a},\"stage_b\":{\"layers\":\"$layers_b\",\"rss_bytes\":$rss_b,\"share_bytes\":$share_b},\"recovery_s\":$rec_s,\"replayed_tokens\":$rec_tokens,\"replay_steps\":$rec_calls}"
echo "$json" >"$OUT/pipeline.json"
echo "results in $OUT/pipeline.json"
