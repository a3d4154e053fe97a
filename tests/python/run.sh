#!/usr/bin/env bash
# CTest's entry to the Python tests: tests/python/run.sh PYTHON BUILD_DIR CLI SHARED [pytest args]
# Skips (77) when the interpreter lacks pytest or NumPy (scripts/install-deps.sh installs them).
set -euo pipefail
python=$1 build=$2 cli=$3 shared=$4
shift 4
if ! "$python" -c 'import pytest, numpy' 2>/dev/null; then
  echo "skipped: $python has no pytest or numpy (apt-get install python3-pytest python3-numpy)"
  exit 77
fi
export PYTHONPATH="$build/python${PYTHONPATH:+:$PYTHONPATH}" GGSWARM_CLI="$cli" GGSWARM_SHARED="$shared"
cd "$(dirname "$0")"
exec "$python" -m pytest -q -p no:cacheprovider "$@"
