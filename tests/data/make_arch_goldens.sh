#!/usr/bin/env bash
# Makes tests/data/archs/*: llama.cpp's last-position logits and greedy tokens on random models
# of each architecture ggswarm runs besides llama (model/config.h's table), and of a Llama 3,
# made by `ggswarm synth --preset tiny --seed 1` with the flags tests/arch_cases.h gives each
# case (that file says why each is shaped as it is). inference_test remakes the same models
# bit for bit and compares.
#   tests/data/make_arch_goldens.sh [BUILD_DIR] [CASE...]   (needs ../shared/reference/llamacpp-ref)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
shift || true
ref=../shared/reference/llamacpp-ref
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p tests/data/archs
# The table's lines: {"NAME", "FLAGS"},
sed -n 's/^ *{"\([a-z0-9]*\)", "\(.*\)"},$/\1 \2/p' tests/arch_cases.h >"$tmp/cases"
while read -r arch flags; do
  if [ $# -gt 0 ] && [[ " $* " != *" $arch "* ]]; then continue; fi
  for t in F32 Q8_0 Q4_K_M; do
    # shellcheck disable=SC2086  # the flags are words
    "$build/ggswarm" synth "$tmp/m.gguf" --preset tiny $flags --type "$t" --seed 1 \
      --force >/dev/null
    "$ref" --model "$tmp/m.gguf" --prompt "Once upon a time" --n-predict 48 --threads 1 \
      --ignore-eos --json "$tmp/run.json" --dump-logits "tests/data/archs/$arch-$t.logits.json" \
      >/dev/null 2>"$tmp/err" </dev/null || { cat "$tmp/err"; exit 1; }
    python3 -c "import json,sys; d=json.load(open('$tmp/run.json')); json.dump({k: d[k] for k in ('prompt','prompt_tokens','top10','generated_tokens')}, open('tests/data/archs/$arch-$t.json','w'))"
    echo "$arch-$t: done"
  done
done <"$tmp/cases"
