#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds ggswarm, and runs the main job end to end on a
# model it makes itself: synth → fragment → verify → reassemble (byte-identical).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build
scripts/demo.sh
