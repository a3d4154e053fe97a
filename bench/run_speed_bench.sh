#!/usr/bin/env bash
# The speed table of issue 4: `ggswarm bench` at 1 and 2 threads on models made by
# `ggswarm synth` (TinyLlama-1.1B in Q8_0, Q4_0 and Q4_K_M; Mistral-7B in Q4_K_M, 4.4 GB),
# llama.cpp on the same files where ../shared/reference/llamacpp-ref can run, the ratios,
# and the TinyLlama Q4_K_M model once more from a fragment directory.
#
#   bench/run_speed_bench.sh [--quick] [--no-llamacpp] [--no-mistral] [--avx2] [--qwen] [--moe]
#
# Models go to $MODELS (default build/bench-models), results (JSON) to $OUT (default
# build/bench-results). --quick: TinyLlama Q4_0 only, short runs (a smoke test). --qwen: a
# Qwen3-8B-shaped Q4_K_M model (5 GB) instead, pp128/tg64, and it again from fragments.
# --moe: a Qwen3-30B-A3B-shaped Q4_K_M model (all 48 layers, 18 GB; the disk is checked
# first) instead, pp512/tg128, once (no fragments: the copy would take another 18 GB).
# --avx2: both programs as on a CPU without AVX-512 (GGSWARM_ISA=avx2; llama.cpp from a copy
# of its install that keeps only its Haswell CPU library, which its loader then picks).
# Takes about 20 minutes in full; needs about 7 GB of disk.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
quick=0 llamacpp=1 mistral=1 avx2=0 qwen=0 moe=0
for a in "$@"; do
  case $a in
    --quick) quick=1 ;;
    --no-llamacpp) llamacpp=0 ;;
    --no-mistral) mistral=0 ;;
    --avx2) avx2=1 ;;
    --qwen) qwen=1 ;;
    --moe) moe=1 ;;
    *) echo "usage: $0 [--quick] [--no-llamacpp] [--no-mistral] [--avx2] [--qwen] [--moe]" >&2
       exit 2 ;;
  esac
done
scripts/install-deps.sh
[ -x build/ggswarm ] || scripts/build.sh build >&2
gg=$root/build/ggswarm
models=${MODELS:-$root/build/bench-models}
out=${OUT:-$root/build/bench-results}
mkdir -p "$models" "$out"
ref=$root/../shared/reference/llamacpp-ref
if [ $llamacpp = 1 ] && [ ! -x "$ref" ]; then
  echo "note: $ref not found: llama.cpp columns left empty" >&2
  llamacpp=0
fi
if [ $avx2 = 1 ]; then
  export GGSWARM_ISA=avx2
  if [ $llamacpp = 1 ]; then
    # The reference installs itself on first use; then a copy of that install without the
    # CPU libraries for anything above AVX2.
    home=${LLAMACPP_REF_HOME:-$HOME/.cache/llamacpp-ref}
    [ -d "$home/node_modules" ] || "$ref" --help >/dev/null 2>&1 || true
    haswell=$out/llamacpp-ref-haswell
    if [ ! -d "$haswell/node_modules" ]; then
      rm -rf "$haswell"
      cp -a "$home" "$haswell"
    fi
    if [ -z "$(find "$haswell/node_modules" -name libggml-cpu-haswell.so)" ]; then
      echo "note: llama.cpp's Haswell CPU library not found: llama.cpp columns left empty" >&2
      llamacpp=0
    fi
    find "$haswell/node_modules" -name 'libggml-cpu-*.so' ! -name libggml-cpu-haswell.so -delete
    export LLAMACPP_REF_HOME=$haswell
  fi
fi

# name preset type n_prompt n_gen repetitions
runs=("tinyllama-1.1b-Q8_0 tinyllama-1.1b Q8_0 512 128 3"
      "tinyllama-1.1b-Q4_0 tinyllama-1.1b Q4_0 512 128 3"
      "tinyllama-1.1b-Q4_K_M tinyllama-1.1b Q4_K_M 512 128 3")
[ $mistral = 1 ] && runs+=("mistral-7b-Q4_K_M mistral-7b Q4_K_M 128 64 2")
[ $quick = 1 ] && runs=("tinyllama-1.1b-Q4_0 tinyllama-1.1b Q4_0 64 16 1")
# --qwen: the families' benchmark instead: a Qwen3-8B-shaped Q4_K_M model (its qwen3
# architecture and BPE vocabulary come with the preset).
[ $qwen = 1 ] && runs=("qwen3-8b-Q4_K_M qwen3-8b Q4_K_M 512 128 1")
if [ $moe = 1 ]; then
  runs=("qwen3-30b-a3b-Q4_K_M qwen3-30b-a3b Q4_K_M 512 128 1")
  free_gb=$(df -Pk "$models" | awk 'NR == 2 {printf "%d", $4 / 1048576}')
  if [ ! -f "$models/qwen3-30b-a3b-Q4_K_M.gguf" ] && [ "$free_gb" -lt 20 ]; then
    echo "--moe needs about 18 GB of disk in $models; $free_gb GB are free" >&2
    exit 1
  fi
fi

# A prompt of exactly n tokens (with BOS) for llama.cpp: words added until the model's
# tokenizer gives n.
make_prompt() {
  local model=$1 n=$2 lo=1 hi mid text count
  hi=$((n * 2))
  local words=(once upon a time there was a little girl named lily she loved to play outside
               in the park with her friends and her dog)
  while [ $lo -lt $hi ]; do
    mid=$(((lo + hi + 1) / 2))
    text=$(for ((i = 0; i < mid; i++)); do printf '%s ' "${words[i % ${#words[@]}]}"; done)
    count=$("$gg" tokenize --json "$model" "${text% }" | jq length)
    if [ "$count" -le "$n" ]; then lo=$mid; else hi=$((mid - 1)); fi
  done
  for ((i = 0; i < lo; i++)); do printf '%s ' "${words[i % ${#words[@]}]}"; done | sed 's/ $//'
}

for r in "${runs[@]}"; do
  read -r name preset type p n reps <<<"$r"
  model=$models/$name.gguf
  [ -f "$model" ] || "$gg" synth --preset "$preset" --type "$type" "$model" >&2
  # Into the page cache first: a model the size of the MoE one (17 GB on a 24 GB machine)
  # is otherwise partly read from the disk during the first timed tokens of each program.
  cat "$model" >/dev/null
  for t in 1 2; do
    echo "ggswarm bench $name -t $t" >&2
    "$gg" bench "$model" -p "$p" -n "$n" -t "$t" -r "$reps" --json >"$out/$name.t$t.json"
    if [ $llamacpp = 1 ]; then
      echo "llama.cpp $name -t $t" >&2
      prompt=$(make_prompt "$model" "$p")
      "$ref" --model "$model" --prompt "$prompt" --n-predict "$n" --threads "$t" \
        --ctx $((p + n + 16)) --ignore-eos --json "$out/$name.llama.t$t.json" >/dev/null 2>&1 ||
        echo "llama.cpp failed on $name" >&2
    fi
  done
done

# The same model from fragments (generation streams the weights from the fragment maps).
frag_name=tinyllama-1.1b-Q4_K_M
[ $quick = 1 ] && frag_name=tinyllama-1.1b-Q4_0
[ $qwen = 1 ] && frag_name=qwen3-8b-Q4_K_M
[ $moe = 1 ] && frag_name=
if [ -n "$frag_name" ] && [ ! -f "$models/$frag_name.frag/manifest.json" ]; then
  rm -rf "$models/$frag_name.frag"
  "$gg" fragment "$models/$frag_name.gguf" "$models/$frag_name.frag" >&2
fi
if [ -n "$frag_name" ]; then
  read -r _ _ _ p n reps <<<"$(printf '%s\n' "${runs[@]}" | grep "^$frag_name ")"
  echo "ggswarm bench $frag_name (fragments) -t 2" >&2
  "$gg" bench "$models/$frag_name.frag" -p "$p" -n "$n" -t 2 -r "$reps" --json >"$out/$frag_name.frag.t2.json"
fi

# The table.
f1() { [ -f "$1" ] && jq -r "$2 // empty" "$1" 2>/dev/null || true; }
ratio() { if [ -n "$1" ] && [ -n "$2" ]; then echo "$1 $2" | awk '{printf "%.2f", $1 / $2}'; fi; }
printf '\n%-24s %3s | %18s %8s %6s | %18s %8s %6s | %6s %7s %9s %7s\n' model t \
  "pp ggswarm" llama.cpp ratio "tg ggswarm" llama.cpp ratio bound "of bound" "RSS MiB" "load s"
for r in "${runs[@]}"; do
  read -r name _ _ p n _ <<<"$r"
  for t in 1 2; do
    j=$out/$name.t$t.json l=$out/$name.llama.t$t.json
    pp=$(f1 "$j" '.pp.mean') ppsd=$(f1 "$j" '.pp.sd') tg=$(f1 "$j" '.tg.mean') tgsd=$(f1 "$j" '.tg.sd')
    lpp=$(f1 "$l" '.prompt_tok_s') ltg=$(f1 "$l" '.gen_tok_s')
    printf '%-24s %3s | %11.2f ±%5.2f %8.2f %6s | %11.2f ±%5.2f %8.2f %6s | %6.2f %6.0f%% %9.0f %7.3f\n' \
      "$name pp$p/tg$n" "$t" "$pp" "$ppsd" "${lpp:-0}" "$(ratio "$pp" "$lpp")" "$tg" "$tgsd" \
      "${ltg:-0}" "$(ratio "$tg" "$ltg")" "$(f1 "$j" '.tg_bound_tokens_per_s')" \
      "$(f1 "$j" '.tg_fraction_of_bound * 100')" "$(f1 "$j" '.peak_rss_bytes / 1048576')" \
      "$(f1 "$j" '.load_s')"
  done
done
if [ -n "$frag_name" ]; then
  j=$out/$frag_name.frag.t2.json g=$out/$frag_name.t2.json
  printf '\nfrom fragments, 2 threads: %s pp %.2f (GGUF %.2f, ratio %s), tg %.2f (GGUF %.2f, ratio %s), load %.3f s\n' \
    "$frag_name" "$(f1 "$j" '.pp.mean')" "$(f1 "$g" '.pp.mean')" \
    "$(ratio "$(f1 "$j" '.pp.mean')" "$(f1 "$g" '.pp.mean')")" "$(f1 "$j" '.tg.mean')" \
    "$(f1 "$g" '.tg.mean')" "$(ratio "$(f1 "$j" '.tg.mean')" "$(f1 "$g" '.tg.mean')")" \
    "$(f1 "$j" '.load_s')"
fi
echo "(llama.cpp's generation timings at 2 threads on a 2-core machine are noisy: compare its 2-thread pp only.)"
