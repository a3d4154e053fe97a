#!/usr/bin/env bash
# Makes every `ggswarm synth` preset at its real shape but with only its first layers (Q4_K_M;
# 2 layers, so that Gemma's and Qwen3-MoE's patterns have a local and a global layer where
# they apply) and runs llama.cpp (../shared/reference/llamacpp-ref) and ggswarm on each:
# the prompt's tokens and 8 greedy tokens must be the same. (Random weights give flat
# logits, so a greedy chain can part at a near-tie, after which everything differs; the
# golden tests compare by teacher forcing, with a tolerance, for that reason.) One line per
# preset; exit status 1 if any differs. Not a test:
# it needs ../shared, the npm registry the first time, and a few GB of disk for the largest
# vocabularies (each model is removed after its check).
#   bench/check_presets.sh [WORK_DIR] [PRESET...]
set -uo pipefail
cd "$(dirname "$0")/.."
ref=../shared/reference/llamacpp-ref
work=${1:-out/preset-check}
shift || true
mkdir -p "$work"
presets=("$@")
if [ ${#presets[@]} -eq 0 ]; then
  mapfile -t presets < <(build/ggswarm synth --help | sed -n 's/.*Shape preset: //p' |
    tr ',' '\n' | tr -d ' ' | grep -v -E '^(tiny|micro)$')
fi
prompt="Once upon a time, in a land far away"
fail=0
for p in "${presets[@]}"; do
  m=$work/$p.gguf
  if ! build/ggswarm synth "$m" --preset "$p" --n-layer 2 --type Q4_K_M --force >/dev/null 2>&1; then
    echo "$p: synth FAILED"; fail=1; continue
  fi
  "$ref" --model "$m" --prompt "$prompt" --n-predict 8 --threads 2 --ignore-eos \
    --json "$work/$p.llama.json" >"$work/$p.log" 2>&1 || { echo "$p: llama.cpp FAILED"; fail=1; rm -f "$m"; continue; }
  build/ggswarm run "$m" -p "$prompt" -n 8 --temp 0 --ignore-eos --json >"$work/$p.ggswarm.json" 2>/dev/null
  same=$(python3 -c "
import json, sys
l = json.load(open('$work/$p.llama.json')); g = json.load(open('$work/$p.ggswarm.json'))
print('same' if (l['prompt_tokens'], l['generated_tokens']) == (g['prompt_tokens'], g['generated_tokens']) else
      'DIFFERENT: llama.cpp %s %s, ggswarm %s %s' % (l['prompt_tokens'], l['generated_tokens'], g['prompt_tokens'], g['generated_tokens']))")
  echo "$p: $(python3 -c "import json; print(json.load(open('$work/$p.llama.json'))['prompt_tokens'].__len__())") prompt tokens, 8 greedy: $same"
  [[ $same == same ]] || fail=1
  rm -f "$m"
done
exit $fail
