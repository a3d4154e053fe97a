#!/usr/bin/env bash
# Makes a small random model of every type `ggswarm synth` writes and runs llama.cpp
# (../shared/reference/llamacpp-ref, installed from npm on first use) on each: prompt
# evaluation and 8 greedy tokens. Prints one line per type. Not a test: it needs the npm
# registry the first time and ../shared.
set -uo pipefail
cd "$(dirname "$0")/.."
ref=../shared/reference/llamacpp-ref
work=${1:-out/llamacpp-check}
mkdir -p "$work"
for t in F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K Q8_K Q4_K_M; do
  build/ggswarm synth "$work/tiny-$t.gguf" --preset tiny --type "$t" --force >/dev/null 2>&1
  if "$ref" --model "$work/tiny-$t.gguf" --prompt "hello world" --n-predict 8 --threads 1 \
       --json "$work/tiny-$t.json" >"$work/tiny-$t.log" 2>&1; then
    echo "$t: llama.cpp loaded and ran it; greedy tokens $(node -e 'const j=require(process.argv[1]);console.log(JSON.stringify(j.generated_tokens))' "$(realpath "$work/tiny-$t.json")")"
  else
    echo "$t: llama.cpp FAILED: $(grep -m1 -iE 'error|unknown' "$work/tiny-$t.log")"
  fi
done
