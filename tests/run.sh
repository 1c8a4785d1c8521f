#!/usr/bin/env bash
# The test command: formatting, lints, and every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
# The Object Lock tests need an S3 server that enforces Object Lock (moto,
# from PyPI); the other S3 tests start their own server in-process.
if ! python3 -c 'import moto.server, flask' >/dev/null 2>&1; then
  echo "installing moto[server] for the Object Lock tests" >&2
  python3 -m pip install --quiet 'moto[server]'
fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The systemd units: systemd-analyze verify and security against the binary.
cargo build --quiet -p cadang
bash deploy/check-units.sh target/debug/cadang
cargo test --workspace --no-fail-fast
