#!/usr/bin/env bash
# Makes the Debian package from a built tree, unpacks it into a scratch root (no system
# change), runs the installed `ggswarm` on a model, and builds a program against the
# installed library with find_package(ggswarm). Usage: scripts/check_package.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
(cd "$build" && cpack -G DEB >/dev/null)
deb=$(ls "$build"/ggswarm_*_amd64.deb)
for dep in libgrpc libcpp-httplib; do
  dpkg-deb -f "$deb" Depends | grep -q "$dep" || { echo "package declares no $dep dependency" >&2; exit 1; }
done
dpkg -x "$deb" "$root"
ggswarm="$root/usr/bin/ggswarm"
"$ggswarm" --version
model=../shared/models/stories260K-f32.gguf
if [ -f "$model" ]; then
  "$ggswarm" run "$model" -p "Once upon a time" -n 8 --temp 0 -t 1
else
  echo "../shared/models absent: the installed program runs on a model it makes" >&2
  model="$root/m.gguf"
  "$ggswarm" synth "$model" --preset micro
  "$ggswarm" run "$model" -p "hi" -n 4 --temp 0 -t 1
fi
cmake -S examples/consumer -B "$root/consumer" -DCMAKE_PREFIX_PATH="$root/usr" \
  -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/consumer" -j"$(nproc)" >/dev/null
"$root/consumer/bridge_example" "$model" "Once upon a time" 8
# The Python module, where the package put it, from the installed files alone.
pydir=$(ls -d "$root"/usr/lib/python3*/dist-packages 2>/dev/null | head -1)
if [ -n "$pydir" ]; then
  PYTHONPATH="$pydir" /usr/bin/python3 -c "import ggswarm, sys; print(ggswarm.Bridge(sys.argv[1], threads=1).generate('Once upon a time', max_tokens=8, temperature=0))" "$model"
elif grep -q "Python module: on" "$build/CMakeCache.txt" 2>/dev/null || [ -f "$build/python/ggswarm/__init__.py" ]; then
  echo "the build has a Python module but the package does not" >&2; exit 1
fi
echo "package OK: $(basename "$deb")"
