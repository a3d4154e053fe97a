#!/usr/bin/env bash
# Serving benchmark: ggswarm server and llama.cpp's llama-server on the same GGUF file, the
# same threads and parallel slots, under 1, 2, 4, 8 and 16 concurrent streaming clients
# (bench_serve: each client one greedy completion of TOKENS tokens, ignore_eos), giving
# aggregate generated tokens/s, time to first token and time per output token (p50, p99).
# Then one client's 6-turn chat (bench_serve --chat: time to first token per turn, with the
# prompt cache). Also llama.cpp's own llama-batched-bench on the file. llama.cpp is built from the source the
# npm package node-llama-cpp ships (llama/gitRelease.bundle, installed by
# ../shared/reference/llamacpp-ref) into $LLAMA_DIR (default /tmp/llama.cpp), outside the
# repository.
#   bench/serve_bench.sh [--no-llamacpp] [--no-mistral] [--no-tinyllama] [--tokens N] [--threads T]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
llamacpp=1 mistral=1 tinyllama=1 tokens=64 threads=2
while [ $# -gt 0 ]; do
  case $1 in
    --no-llamacpp) llamacpp=0 ;;
    --no-mistral) mistral=0 ;;
    --no-tinyllama) tinyllama=0 ;;
    --tokens) tokens=$2; shift ;;
    --threads) threads=$2; shift ;;
    *) echo "usage: $0 [--no-llamacpp] [--no-mistral] [--no-tinyllama] [--tokens N] [--threads T]" >&2; exit 2 ;;
  esac
  shift
done
bin=$root/build/ggswarm load=$root/build/bench/bench_serve
work=${BENCH_DIR:-/tmp/ggswarm-serve-bench}
mkdir -p "$work"
llama=${LLAMA_DIR:-/tmp/llama.cpp}
if [ $llamacpp = 1 ] && [ ! -x "$llama/build/bin/llama-server" ]; then
  "$root/../shared/reference/llamacpp-ref" --help >/dev/null 2>&1 || true
  bundle=$(find / -name gitRelease.bundle -path '*node-llama-cpp*' 2>/dev/null | head -1)
  if [ -z "$bundle" ]; then
    echo "note: llama.cpp's source bundle not found: llama.cpp rows left out" >&2; llamacpp=0
  else
    [ -d "$llama" ] || git clone -q "$bundle" "$llama"
    cmake -S "$llama" -B "$llama/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_NATIVE=ON >/dev/null
    cmake --build "$llama/build" -j"$(nproc)" --target llama-batched-bench llama-server >/dev/null
  fi
fi

models=()
[ $tinyllama = 1 ] && models+=("tinyllama-1.1b Q8_0")
[ $mistral = 1 ] && models+=("mistral-7b Q4_K_M")
ctx=2048  # per slot: the chat turns reach about 1,400 tokens
wait_ready() {  # URL
  for _ in $(seq 1 1200); do curl -sf "$1/health" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}
run_load() {  # NAME PORT
  # One warm-up request (maps the weights), then each concurrency.
  "$load" 127.0.0.1 "$2" 1 8 >/dev/null
  for c in 1 2 4 8 16; do
    printf '%s\t' "$1"
    "$load" 127.0.0.1 "$2" "$c" "$tokens"
  done
  # A conversation of 6 turns after a long system message: the prompt cache's effect on the
  # time to first token (each turn's prompt begins with the last one and its answer).
  "$load" 127.0.0.1 "$2" --chat 6 32 | sed "s/^/$1 chat\t/"
}
for m in "${models[@]}"; do
  read -r preset type <<<"$m"
  file=$work/$preset.$type.gguf
  [ -f "$file" ] || "$bin" synth "$file" --preset "$preset" --type "$type" >/dev/null
  echo "== $preset $type, $threads threads, 16 slots, $tokens tokens per request"
  "$bin" server "$file" --port 18181 --parallel 16 --ctx $ctx -t "$threads" --chat-template chatml \
    >"$work/server.log" 2>&1 &
  pid=$!
  wait_ready http://127.0.0.1:18181 && run_load ggswarm 18181
  kill $pid; wait $pid 2>/dev/null || true
  if [ $llamacpp = 1 ]; then
    "$llama/build/bin/llama-server" -m "$file" --port 18182 -np 16 -c $((16 * ctx)) -t "$threads" \
      -b 512 --no-webui >"$work/llama-server.log" 2>&1 &
    pid=$!
    wait_ready http://127.0.0.1:18182 && run_load llama-server 18182
    kill $pid; wait $pid 2>/dev/null || true
    echo "-- llama-batched-bench (prompt 16, $tokens generated, 1-16 sequences)"
    "$llama/build/bin/llama-batched-bench" -m "$file" -c $((16 * (16 + tokens))) -b 2048 \
      -npp 16 -ntg "$tokens" -npl 1,2,4,8,16 -t "$threads" 2>/dev/null | grep '^|' || true
  fi
done
