#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds ggswarm, and runs the main job end to end on a
# model it makes itself: synth → fragment → verify → reassemble (byte-identical).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
GGSWARM_TARGETS=ggswarm_cli scripts/build.sh build  # the program first; the tests come with test.sh
if cmake --build build --target help | grep -q ggswarm_python; then  # and the Python module
  cmake --build build -j"$(nproc)" --target ggswarm_python
fi
scripts/demo.sh
