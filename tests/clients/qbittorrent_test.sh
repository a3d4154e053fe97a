#!/usr/bin/env bash
# Another BitTorrent v2 client, both ways, on loopback: Debian's qBittorrent (4.5, libtorrent
# 2.0), driven through its Web API on 127.0.0.1 with DHT, local discovery, peer exchange and
# UPnP off, downloads a model that `ggswarm peer` seeds, and seeds one that `ggswarm fetch`
# downloads; every file byte-identical, and `ggswarm verify` accepts the fetched copy.
# Usage: qbittorrent_test.sh GGSWARM_BINARY
# Exits 77 (skipped) without qbittorrent-nox (apt-get install qbittorrent-nox).
set -euo pipefail
bin=$1
if ! command -v qbittorrent-nox >/dev/null; then
  echo "skipped: no qbittorrent-nox (apt-get install qbittorrent-nox)"; exit 77
fi
. "$(dirname "$0")/torrent_clients.sh"
web=$(free_port) bt=$(free_port)
api=http://127.0.0.1:$web/api/v2

# Two models, each cut into fragments with its v2 torrent.
for m in a b; do
  seed=3; [ $m = b ] && seed=4
  "$bin" synth "$work/$m.gguf" --preset tiny --n-layer 2 --type Q8_0 --seed $seed --name "qb-$m" >/dev/null
  "$bin" fragment "$work/$m.gguf" "$work/frag-$m" >"$work/frag-$m.log"
done
ih_a=$(sed -n 's/.*info-hash \([0-9a-f]\{64\}\).*/\1/p' "$work/frag-a.log" | head -1)
ih_b=$(sed -n 's/.*info-hash \([0-9a-f]\{64\}\).*/\1/p' "$work/frag-b.log" | head -1)

# qBittorrent, on 127.0.0.1 only, nothing that reaches past this machine.
mkdir -p "$work/qb/qBittorrent/config" "$work/qb-dl"
cat >"$work/qb/qBittorrent/config/qBittorrent.conf" <<CONF
[LegalNotice]
Accepted=true

[BitTorrent]
Session\\DHTEnabled=false
Session\\LSDEnabled=false
Session\\PeXEnabled=false
Session\\Port=$bt
Session\\InterfaceAddress=127.0.0.1
Session\\DefaultSavePath=$work/qb-dl
Session\\QueueingSystemEnabled=false

[Preferences]
Connection\\UPnP=false
WebUI\\Address=127.0.0.1
WebUI\\Port=$web
WebUI\\LocalHostAuth=false
WebUI\\CSRFProtection=false
CONF
qbittorrent-nox --profile="$work/qb" >"$work/qb.log" 2>&1 &
pids+=($!)
until_ok 60 curl -sf "$api/app/version" || { cat "$work/qb.log"; fail "qBittorrent's Web API did not come up"; }
echo "qBittorrent $(curl -s "$api/app/version") on 127.0.0.1:$bt (Web API :$web)"
state() {  # V2_INFOHASH: "STATE PROGRESS" of that torrent in qBittorrent
  curl -s "$api/torrents/info" | jq -r ".[] | select(.infohash_v2 == \"$1\") | \"\(.state) \(.progress)\""
}
complete() { [ "$(state "$1" | cut -d' ' -f2)" = 1 ]; }

# 1. ggswarm seeds, qBittorrent downloads.
"$bin" peer --seed "$work/frag-a" --listen 127.0.0.1:0 >"$work/peer.log" 2>&1 &
pids+=($!)
until_ok 30 grep -q '^seeding ' "$work/peer.log" || { cat "$work/peer.log"; fail "the peer did not start"; }
peer=$(sed -n 's/^listening on \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$work/peer.log")
curl -sf -F "torrents=@$work/frag-a/model.torrent" -F "savepath=$work/qb-dl" "$api/torrents/add" >/dev/null
until_ok 10 test -n "$(state "$ih_a")" || fail "qBittorrent did not take the torrent"
hash_a=$(curl -s "$api/torrents/info" | jq -r ".[] | select(.infohash_v2 == \"$ih_a\") | .hash")
curl -sf -d "hashes=$hash_a&peers=$peer" "$api/torrents/addPeers" >/dev/null
until_ok 120 complete "$ih_a" || fail "qBittorrent did not download from ggswarm peer: $(state "$ih_a")"
echo -n "qBittorrent downloaded qb-a from ggswarm peer $peer: "
same_files "$work/frag-a" "$work/qb-dl/a"

# 2. qBittorrent seeds, ggswarm fetches.
mkdir -p "$work/qb-seed/b"
for f in "$work/frag-b"/*; do [ "$(basename "$f")" = model.torrent ] || cp "$f" "$work/qb-seed/b/"; done
curl -sf -F "torrents=@$work/frag-b/model.torrent" -F "savepath=$work/qb-seed" "$api/torrents/add" >/dev/null
until_ok 60 complete "$ih_b" || fail "qBittorrent does not seed what it was given: $(state "$ih_b")"
"$bin" fetch "$ih_b" "$work/fetched" --peer "127.0.0.1:$bt" --timeout 60 >"$work/fetch.log" 2>&1 ||
  { cat "$work/fetch.log"; fail "ggswarm fetch from qBittorrent failed"; }
"$bin" verify "$work/fetched" >/dev/null || fail "verify refuses what came from qBittorrent"
echo -n "ggswarm fetched qb-b from qBittorrent: "
same_files "$work/frag-b" "$work/fetched"
