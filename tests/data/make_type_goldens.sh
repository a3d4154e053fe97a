#!/usr/bin/env bash
# Makes tests/data/types/*: llama.cpp's last-position logits on a random model of each tensor
# type, made by ggswarm's own writer (preset "tiny": n_embd 256, so rows fit the K-quant
# blocks; seed 1). inference_test remakes the same models bit for bit and compares.
#   tests/data/make_type_goldens.sh [BUILD_DIR]   (needs ../shared/reference/llamacpp-ref)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
ref=../shared/reference/llamacpp-ref
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for t in F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K Q4_K_M; do
  "$build/ggswarm" synth "$tmp/m.gguf" --preset tiny --type "$t" --seed 1 --force >/dev/null
  "$ref" --model "$tmp/m.gguf" --prompt "Once upon a time" --n-predict 8 --threads 1 \
    --ignore-eos --json "$tmp/run.json" --dump-logits "tests/data/types/tiny-$t.logits.json" \
    >/dev/null 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }
  python3 -c "import json,sys; d=json.load(open('$tmp/run.json')); json.dump({k: d[k] for k in ('prompt','prompt_tokens','top10','generated_tokens')}, open('tests/data/types/tiny-$t.json','w'))"
  echo "tiny-$t: done"
done
