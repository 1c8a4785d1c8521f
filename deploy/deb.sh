#!/usr/bin/env bash
# Builds the cadang .deb with cargo-deb (`cargo install cargo-deb --version 3.8.0`).
#   bash deploy/deb.sh                 build target/debian/cadang_*.deb (release)
#   bash deploy/deb.sh --install-test  also install it with dpkg -i on this machine
#                                      (as root), check users, directories, units and
#                                      the binary, then purge it again
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PROFILE="${CADANG_DEB_PROFILE:-release}"
command -v cargo-deb >/dev/null || cargo install cargo-deb --version 3.8.0 --locked
cargo deb -p cadang --profile "$PROFILE"
DEB="$(ls -t target/debian/cadang_*.deb | head -1)"
echo "built $DEB"
dpkg-deb --contents "$DEB" | awk '{print $6}'
[ "${1:-}" = "--install-test" ] || exit 0

fail() { echo "deb install test: $*" >&2; exit 1; }
dpkg -i "$DEB"
getent passwd cadang >/dev/null || fail "user cadang was not created"
getent passwd cadang-agent >/dev/null || fail "user cadang-agent was not created"
[ "$(stat -c %U:%a /var/lib/cadang-controller)" = "cadang:750" ] || fail "/var/lib/cadang-controller owner/mode"
[ "$(stat -c %U:%a /var/lib/cadang-agent)" = "cadang-agent:700" ] || fail "/var/lib/cadang-agent owner/mode"
for u in cadang-controller cadang-agent; do
  [ -f "/lib/systemd/system/$u.service" ] || fail "$u.service not installed"
  systemd-analyze verify --man=no "/lib/systemd/system/$u.service" || fail "$u.service does not verify"
done
/usr/bin/cadang --version
dpkg --purge cadang
[ ! -e /usr/bin/cadang ] || fail "purge left /usr/bin/cadang"
[ ! -e /var/lib/cadang-agent ] || fail "purge left /var/lib/cadang-agent"
echo "deb install test: installed, checked and purged $DEB"
