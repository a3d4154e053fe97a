#!/usr/bin/env bash
# Makes tests/data/archs/*: llama.cpp's last-position logits and greedy tokens on random models
# of each architecture ggswarm runs besides llama (model/config.h's table), and of a Llama 3
# (its BPE vocabulary, a head tied to the embedding, Llama 3.1's rope_freqs), made by
# ggswarm's own writer (preset "tiny", seed 1; qwen2 and qwen3 with the qwen2 BPE vocabulary,
# qwen3 with heads of 128, wider than n_embd / n_head as in Qwen3-0.6B; qwen3moe as qwen3
# with 8 experts of 256, 2 used per token; mistral3 with YaRN ×16 from an original context
# of 32 and query temperature 0.1, so that the 48 generated positions cross into its scaling;
# phi3 with fused q/k/v and gate/up, rope on 48 of 64 dimensions, and an original context of
# 256, below llamacpp-ref's 512, so that its long rope factors apply). inference_test
# remakes the same models bit for bit and compares.
#   tests/data/make_arch_goldens.sh [BUILD_DIR]   (needs ../shared/reference/llamacpp-ref)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
ref=../shared/reference/llamacpp-ref
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p tests/data/archs
for arch in qwen2 qwen3 qwen3moe llama3 mistral3 phi3; do
  case $arch in
    qwen2) flags=(--arch qwen2 --vocab qwen2) ;;
    qwen3) flags=(--arch qwen3 --vocab qwen2 --head-dim 128) ;;
    qwen3moe) flags=(--arch qwen3moe --vocab qwen2 --head-dim 128 --n-expert 8 --n-expert-used 2
                     --n-ff-exp 256) ;;
    llama3) flags=(--arch llama --vocab llama3 --tied-output --llama3-rope) ;;
    mistral3) flags=(--arch mistral3 --vocab tekken --yarn-factor 16 --yarn-orig-ctx 32
                     --attn-temp-scale 0.1) ;;
    phi3) flags=(--arch phi3 --rope-dim 48 --yarn-orig-ctx 256 --tied-output) ;;
  esac
  for t in F32 Q8_0 Q4_K_M; do
    "$build/ggswarm" synth "$tmp/m.gguf" --preset tiny "${flags[@]}" --type "$t" --seed 1 \
      --force >/dev/null
    "$ref" --model "$tmp/m.gguf" --prompt "Once upon a time" --n-predict 48 --threads 1 \
      --ignore-eos --json "$tmp/run.json" --dump-logits "tests/data/archs/$arch-$t.logits.json" \
      >/dev/null 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }
    python3 -c "import json,sys; d=json.load(open('$tmp/run.json')); json.dump({k: d[k] for k in ('prompt','prompt_tokens','top10','generated_tokens')}, open('tests/data/archs/$arch-$t.json','w'))"
    echo "$arch-$t: done"
  done
done
