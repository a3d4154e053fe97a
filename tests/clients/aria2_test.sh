#!/usr/bin/env bash
# A v1-only BitTorrent client both ways, on loopback: Debian's aria2 (1.36, which refuses v2
# and hybrid torrents) downloads a model that `ggswarm peer` seeds from a `fragment --v1`
# torrent, and seeds one that `ggswarm fetch` downloads by its v1 info-hash; every file
# byte-identical. aria2 saves into SAVEPATH/NAME/, and `ggswarm verify SAVEPATH` points there.
# aria2 has DHT, local discovery and peer exchange off and binds to 127.0.0.1; as it cannot
# be told of a peer, ggswarm connects to it (peer --connect, fetch --peer).
# Usage: aria2_test.sh GGSWARM_BINARY
# Exits 77 (skipped) without aria2c (apt-get install aria2).
set -euo pipefail
bin=$1
if ! command -v aria2c >/dev/null; then
  echo "skipped: no aria2c (apt-get install aria2)"; exit 77
fi
. "$(dirname "$0")/torrent_clients.sh"
# aria2c on 127.0.0.1 only, nothing that reaches past this machine. Run in the background, it
# replaces the function's subshell (exec), so that the pid the cleanup kills is aria2c's own:
# killing the subshell left the seeding aria2c running after the test.
aria() {
  exec aria2c --interface=127.0.0.1 --disable-ipv6=true --enable-dht=false --enable-dht6=false \
    --bt-enable-lpd=false --enable-peer-exchange=false --file-allocation=none \
    --summary-interval=0 --console-log-level=warn "$@"
}
listening() { grep -q ":$(printf '%04X' "$1") 00000000:0000 0A" /proc/net/tcp; }  # PORT

for m in a b; do
  seed=5; [ $m = b ] && seed=6
  "$bin" synth "$work/$m.gguf" --preset tiny --n-layer 2 --type Q8_0 --seed $seed --name "ar-$m" >/dev/null
  "$bin" fragment "$work/$m.gguf" "$work/frag-$m" --v1 >"$work/frag-$m.log"
done
grep -q 'info-hash [0-9a-f]\{40\}$' "$work/frag-a.log" || { cat "$work/frag-a.log"; fail "no v1 info-hash"; }
ih_b=$(sed -n 's/.*info-hash \([0-9a-f]\{40\}\)$/\1/p' "$work/frag-b.log" | head -1)

# 1. ggswarm seeds, aria2 downloads (and exits once it has everything).
port=$(free_port)
aria --listen-port="$port" --seed-time=0 --bt-stop-timeout=120 --dir="$work/ar-dl" \
  "$work/frag-a/model.torrent" >"$work/aria-dl.log" 2>&1 &
dl=$!
pids+=($dl)
until_ok 30 listening "$port" || { cat "$work/aria-dl.log"; fail "aria2 did not listen"; }
"$bin" peer --seed "$work/frag-a" --connect "127.0.0.1:$port" >"$work/peer.log" 2>&1 &
pids+=($!)
wait "$dl" || { cat "$work/aria-dl.log" "$work/peer.log"; fail "aria2 did not download from ggswarm peer"; }
grep -q "^seeding .* info-hash [0-9a-f]\{40\} from $work/frag-a:" "$work/peer.log" ||
  { cat "$work/peer.log"; fail "the peer does not say what it seeds"; }
# The torrent's name is the GGUF file's stem.
[ -d "$work/ar-dl/a" ] || { ls -R "$work/ar-dl"; fail "aria2 saved elsewhere"; }
echo -n "aria2 downloaded ar-a from ggswarm peer: "
same_files "$work/frag-a" "$work/ar-dl/a"
if out=$("$bin" verify "$work/ar-dl" 2>&1); then fail "verify took the save path"; fi
grep -q "the folder $work/ar-dl/a below it does" <<<"$out" || fail "verify said: $out"
"$bin" verify "$work/ar-dl/a" >/dev/null || fail "verify refuses what aria2 downloaded"

# 2. aria2 seeds, ggswarm fetches by the v1 info-hash.
mkdir -p "$work/ar-seed/b"
for f in "$work/frag-b"/*; do [ "$(basename "$f")" = model.torrent ] || cp "$f" "$work/ar-seed/b/"; done
port=$(free_port)
aria --listen-port="$port" --check-integrity=true --seed-ratio=0.0 --dir="$work/ar-seed" \
  "$work/frag-b/model.torrent" >"$work/aria-seed.log" 2>&1 &
pids+=($!)
until_ok 30 listening "$port" || { cat "$work/aria-seed.log"; fail "aria2 did not listen"; }
"$bin" fetch "$ih_b" "$work/fetched" --peer "127.0.0.1:$port" --timeout 60 >"$work/fetch.log" 2>&1 ||
  { cat "$work/fetch.log" "$work/aria-seed.log"; fail "ggswarm fetch from aria2 failed"; }
"$bin" verify "$work/fetched" >/dev/null || fail "verify refuses what came from aria2"
echo -n "ggswarm fetched ar-b from aria2: "
same_files "$work/frag-b" "$work/fetched"
