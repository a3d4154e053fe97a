#!/usr/bin/env bash
# Installs the Debian packages ggswarm builds and tests with (Debian 12). Idempotent: does
# nothing when everything is already there.
set -euo pipefail
packages=(build-essential cmake pkg-config libssl-dev nlohmann-json3-dev libcli11-dev
          libgtest-dev libgmock-dev libicu-dev libsentencepiece-dev jq file dpkg-dev git
          libcpp-httplib-dev curl nodejs chromium
          python3-dev python3-pybind11 python3-numpy python3-pytest
          libtorrent-rasterbar-dev libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
          qbittorrent-nox openssl aria2)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm: Debian packages it apart from nodejs; NodeSource's nodejs brings its own.
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "installing: ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
