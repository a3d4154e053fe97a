#!/usr/bin/env bash
# Makes tests/data/bpe/*.tokenize.json: llama.cpp's tokenization of tests/data/bpe/strings.json
# with byte-level BPE vocabularies that ggswarm generates (preset micro, 400 tokens, merges
# learned from a fixed text), one per pre-tokenizer, and with a Gemma-style SentencePiece
# vocabulary (no space prefix, Gemma's special tokens).
#   tests/data/make_bpe_goldens.sh [BUILD_DIR]   (needs ../shared/reference/llamacpp-ref)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
ref=../shared/reference/llamacpp-ref
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for pre in llama3 qwen2 tekken gpt-2 gpt-4o gemma; do
  "$build/ggswarm" synth "$tmp/m.gguf" --preset micro --n-vocab 400 --vocab "$pre" --force >/dev/null
  "$ref" tokenize --model "$tmp/m.gguf" --in tests/data/bpe/strings.json \
    --out "tests/data/bpe/micro-$pre.tokenize.json"
  echo "micro-$pre: done"
done
