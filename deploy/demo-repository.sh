#!/usr/bin/env bash
# cadang repository demo (no controller): one repository in a temp dir.
# Creates a repository, backs up a real directory twice (the second run uses
# the file cache), restores it, compares byte for byte, checks the repository
# with and without keys, and prints a summary.
set -euo pipefail

SRC="${1:-/usr/share/doc}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${CADANG_BIN:-$ROOT/target/release/cadang}"
if [ -z "${CADANG_BIN:-}" ]; then
  echo "== building cadang (release) =="
  cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p cadang
fi

WORK="$(mktemp -d -t cadang-demo.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
export CADANG_PASSPHRASE="${CADANG_PASSPHRASE:-demo passphrase of the Wali Data}"
REPO="$WORK/store/DISKOMINFO"
CREDS="$WORK/agent.credentials"

echo "== repo init =="
"$BIN" repo init --repo "$REPO" --pd DISKOMINFO --agent-credentials "$CREDS"
echo "== backup $SRC =="
"$BIN" backup --repo "$REPO" --credentials "$CREDS" --cache-dir "$WORK/cache" --tag demo "$SRC"
echo "== backup again (unchanged files come from the cache) =="
"$BIN" backup --repo "$REPO" --credentials "$CREDS" --cache-dir "$WORK/cache" --tag demo "$SRC"
echo "== snapshots (keyless view, then with agent credentials) =="
"$BIN" snapshots --repo "$REPO"
"$BIN" snapshots --repo "$REPO" --credentials "$CREDS"
echo "== restore latest =="
"$BIN" restore --repo "$REPO" latest --target "$WORK/restore"
echo "== compare =="
if diff -r --no-dereference "$SRC" "$WORK/restore$SRC" >/dev/null; then
  echo "restore is identical to $SRC"
else
  echo "RESTORE DIFFERS from $SRC" >&2
  exit 1
fi
echo "== check --read-data (keyless) =="
"$BIN" check --repo "$REPO" --read-data --cache-dir "$WORK/cache"
echo "== check --deep (custodian key) =="
"$BIN" check --repo "$REPO" --deep --cache-dir "$WORK/cache"
echo
echo "== summary =="
echo "source:      $SRC ($(du -sh --apparent-size "$SRC" 2>/dev/null | cut -f1))"
echo "repository:  $(du -sh "$REPO" | cut -f1) on disk"
echo "snapshots:   $("$BIN" snapshots --repo "$REPO" --json | grep -c '"id"')"
echo "demo finished: backup, dedup, restore, and both checks succeeded"
