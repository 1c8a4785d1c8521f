#!/usr/bin/env bash
# Checks the systemd units: `systemd-analyze verify` (syntax, the binary and
# its arguments) and `systemd-analyze security` (exposure score at most
# CADANG_MAX_EXPOSURE, default 3.0 "OK"). Run by tests/run.sh.
#   bash deploy/check-units.sh [path/to/cadang]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${1:-$ROOT/target/debug/cadang}"
MAX="${CADANG_MAX_EXPOSURE:-3.0}"
if ! command -v systemd-analyze >/dev/null; then
  echo "check-units: systemd-analyze not found (apt-get install systemd)" >&2
  exit 1
fi
[ -x "$BIN" ] || { echo "check-units: $BIN not built" >&2; exit 1; }
BIN="$(realpath "$BIN")"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
status=0
for unit in "$ROOT"/deploy/systemd/*.service; do
  name="$(basename "$unit")"
  # Verify against the binary just built instead of /usr/bin/cadang.
  sed "s|/usr/bin/cadang|$BIN|g" "$unit" > "$WORK/$name"
  if ! out="$(systemd-analyze verify --man=no "$WORK/$name" 2>&1)"; then
    echo "check-units: $name failed verify:" >&2; echo "$out" >&2; status=1
  elif [ -n "$out" ]; then
    echo "check-units: $name: $out" >&2; status=1
  fi
  score="$(systemd-analyze security --offline=yes "$WORK/$name" 2>/dev/null \
            | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')"
  if [ -z "$score" ]; then
    echo "check-units: $name: no exposure score from systemd-analyze security" >&2; status=1
  elif awk -v s="$score" -v m="$MAX" 'BEGIN {exit !(s > m)}'; then
    echo "check-units: $name exposure $score > $MAX" >&2; status=1
  else
    echo "check-units: $name verified, exposure $score (max $MAX)"
  fi
done
exit $status
