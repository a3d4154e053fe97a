#!/usr/bin/env bash
# Installs the npm packages the client tests use (OpenAI's npm client v6 and puppeteer-core,
# pinned in tests/clients/package-lock.json) into DIR/node_modules (default build/node).
# Does nothing when they are already there.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build/node}
mkdir -p "$dir"
if cmp -s tests/clients/package-lock.json "$dir/package-lock.json" && [ -d "$dir/node_modules/openai" ]; then
  exit 0
fi
cp tests/clients/package.json tests/clients/package-lock.json "$dir/"
# Without the registry the client tests skip (and say so) rather than stop the whole suite.
(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2) ||
  echo "warning: npm ci failed in $dir: the real-client tests will be skipped" >&2
