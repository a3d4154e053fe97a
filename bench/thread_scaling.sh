#!/usr/bin/env bash
# How generation scales with the thread count: `ggswarm bench` on one model at 1, 2, 4, … up
# to the machine's cores, one sequence (tg) and a batch of 8 tokens (a step of 8 sequences,
# as `ggswarm server` runs them), with tg as a fraction of the bandwidth bound. The fixed work
# of a step (the serial parts between products, the hand-offs between threads) grows with
# the threads; this shows how much, on a machine with more cores than this 2-core one.
#
#   bench/thread_scaling.sh [--model M.gguf] [--threads "1 2 4 8 16"] [--ggswarm PATH]
#   bench/thread_scaling.sh --bundle OUT.tar.xz
#
# --bundle packs build/ggswarm with every shared library it loads (the dynamic loader
# included) and this script, so that it runs on a machine without the project's packages:
#   tar xf OUT.tar.xz && ggswarm-bundle/thread_scaling.sh
# (in the bundle, --ggswarm defaults to the packed binary, started through the packed
# loader). Needs only a shell, awk and tar. Without --model it makes a TinyLlama-1.1B-shaped Q4_K_M model (0.7 GB) in a
# temporary folder. Nothing is sent anywhere.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if [ "${1:-}" = --bundle ]; then
  out=${2:?usage: $0 --bundle OUT.tar.xz}
  gg=$here/../build/ggswarm
  [ -x "$gg" ] || { echo "no $gg: build first (scripts/build.sh build)" >&2; exit 1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/ggswarm-bundle/lib"
  cp "$gg" "$tmp/ggswarm-bundle/ggswarm.bin"
  cp "$0" "$tmp/ggswarm-bundle/thread_scaling.sh"
  ldd "$gg" | awk '/=> \// {print $3} /^[ \t]*\/.*ld-linux/ {print $1}' | while read -r lib; do
    cp -L "$lib" "$tmp/ggswarm-bundle/lib/"
  done
  cat >"$tmp/ggswarm-bundle/ggswarm" <<'EOF'
#!/bin/sh
d=$(cd "$(dirname "$0")" && pwd)
exec "$d/lib/ld-linux-x86-64.so.2" --library-path "$d/lib" "$d/ggswarm.bin" "$@"
EOF
  chmod +x "$tmp/ggswarm-bundle/ggswarm"
  tar -C "$tmp" -cJf "$out" ggswarm-bundle
  echo "wrote $out ($(du -h "$out" | cut -f1))"
  exit 0
fi

model= threads= gg=
[ -x "$here/ggswarm" ] && gg=$here/ggswarm  # in a bundle
[ -z "$gg" ] && gg=$here/../build/ggswarm
while [ $# -gt 0 ]; do
  case $1 in
    --model) model=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --ggswarm) gg=$2; shift 2 ;;
    *) echo "usage: $0 [--model M.gguf] [--threads LIST] [--ggswarm PATH] | --bundle OUT" >&2
       exit 2 ;;
  esac
done
cores=$(nproc)
if [ -z "$threads" ]; then
  threads=1
  for t in 2 4 8 16 32 64; do [ "$t" -le "$cores" ] && threads="$threads $t"; done
fi
if [ -z "$model" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  model=$tmp/tinyllama-1.1b-Q4_K_M.gguf
  "$gg" synth "$model" --preset tinyllama-1.1b --type Q4_K_M >&2
fi
cat "$model" >/dev/null  # into the page cache before anything is timed

kernels=$("$gg" bench "$model" -p 0 -n 1 -r 1 2>/dev/null | awk '$1 == "kernels" {print $2}')
echo "model $(basename "$model"), $cores cores, kernels $kernels"
printf '%8s | %12s %9s | %16s\n' threads "tg64 tok/s" "of bound" "batch of 8 tok/s"
for t in $threads; do
  # "tg64  86.73 ± 2.61 tokens/s (90.5 ± 2.4% of the bandwidth bound, …)"; "pp8  … tokens/s"
  read -r tg frac < <("$gg" bench "$model" -p 0 -n 64 -t "$t" -r 3 2>/dev/null |
    awk '$1 == "tg64" {f = $6; sub(/\(/, "", f); print $2, f}')
  b8=$("$gg" bench "$model" -p 8 -n 0 -t "$t" -r 5 2>/dev/null | awk '$1 == "pp8" {print $2}')
  printf '%8s | %12s %8s%% | %16s\n' "$t" "$tg" "$frac" "$b8"
done
