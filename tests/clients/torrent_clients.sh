# Sourced by the tests with other BitTorrent clients (qbittorrent_test.sh, aria2_test.sh):
# a work folder and the processes started there, removed and stopped on exit; failing; a
# free port; comparing a fetched copy with its fragment directory.
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
. "$(dirname "${BASH_SOURCE[0]}")/wait.sh"
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# The torrent's files (model.torrent lies beside them, and is not one of them).
same_files() {  # FRAGMENT_DIR OTHER_DIR
  local n=0
  for f in "$1"/*; do
    [ "$(basename "$f")" = model.torrent ] && continue
    cmp -s "$f" "$2/$(basename "$f")" || fail "$(basename "$f") differs in $2"
    n=$((n + 1))
  done
  [ "$n" -gt 2 ] || fail "only $n files in $1"
  echo "$n files byte-identical"
}
