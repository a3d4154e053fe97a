# Sourced by the client tests: waiting for a condition, with a deadline.
# until_ok SECONDS COMMAND…: true as soon as COMMAND succeeds (asked every 0.2 s, the interval
# of a poll, not a wait for anything), false when SECONDS pass first — as WaitUntil in
# tests/test_util.h does for the C++ tests.
until_ok() {
  local end=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do [ $SECONDS -lt $end ] || return 1; sleep 0.2; done
}
