#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing, builds, runs CTest; then again in a
# build with AddressSanitizer and UndefinedBehaviorSanitizer (skip it with --no-sanitize), which
# is also the portable build (-DGGSWARM_NATIVE=OFF: no -march=native, kernels still chosen at
# run time), so that it cannot stop building unnoticed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build
scripts/install-node-deps.sh build/node  # the client tests' npm packages
(cd build && ctest --output-on-failure -j"$(nproc)")
scripts/check_package.sh build  # the .deb: installed program and find_package(ggswarm)
if [ "${1:-}" != "--no-sanitize" ]; then
  scripts/build.sh build-asan -DGGSWARM_SANITIZE=ON -DGGSWARM_BENCH=OFF -DGGSWARM_NATIVE=OFF
  scripts/install-node-deps.sh build-asan/node
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j"$(nproc)")
fi
echo "all tests passed"
