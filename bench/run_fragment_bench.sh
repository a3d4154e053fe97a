#!/usr/bin/env bash
# Builds ggswarm and measures fragment / verify / reassemble throughput on a 1.17 GB
# TinyLlama-1.1B-shaped Q8_0 model made by `ggswarm synth` (kept in out/bench for reuse).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build
build/bench/bench_fragments --work "${1:-out/bench}" --runs "${RUNS:-3}"
