#!/usr/bin/env bash
# cadang demo on embedded defaults: one full cycle on this machine, no
# external services, everything in a temporary directory.
#
#   a controller (its own CA, HTTPS on 127.0.0.1), two PDs whose custodians
#   create and register their repositories, two agents (separate processes
#   and state directories) enrolled with one-time tokens, an on-site and a
#   DR store (directories), a file source and a database-dump stream;
#   backup -> replicate to the DR site -> verify both sites -> retention,
#   all started by the controller's scheduler; ends with `cadang fleet
#   status` and `cadang jobs`.
#
#   bash deploy/demo.sh            (KEEP=1 keeps the directory to look around)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${CADANG_BIN:-$ROOT/target/release/cadang}"
if [ -z "${CADANG_BIN:-}" ]; then
  echo "== building cadang (release) =="
  cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p cadang
fi
WORK="$(mktemp -d -t cadang-demo.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
export CADANG_PASSPHRASE="${CADANG_PASSPHRASE:-demo passphrase of the Wali Data}"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"

echo "== controller init (CA, server certificate, signing key, admin token) =="
"$BIN" controller init --dir "$WORK/ctl" --listen "127.0.0.1:$PORT" --name 127.0.0.1 \
  --admin-name "Admin Diskominfo" --admin-nip 198503122010011004 > "$WORK/init.txt"
grep -v '^cadang-api-' "$WORK/init.txt"   # the admin token's line is kept out of the terminal
export CADANG_TOKEN="$(grep -m1 '^cadang-api-' "$WORK/init.txt")"
export CADANG_CONTROLLER="https://127.0.0.1:$PORT" CADANG_CA="$WORK/ctl/ca.pem"
mkdir -p "$WORK/pusat-data" "$WORK/drc" "$WORK/srv/dokumen"
cat >> "$WORK/ctl/controller.toml" <<TOML

# Store URLs and credentials live here, never in a policy.
[stores.pusat-data]
url = "$WORK/pusat-data"

[stores.drc]
url = "$WORK/drc"
TOML

echo "== policies: a regency (WITA) and two PDs, every minute so the demo is short =="
cat > "$WORK/ctl/policies/regency.toml" <<'TOML'
name = "Kabupaten Demo"
zone = "Asia/Makassar"
[stores.pusat-data]
site = "onsite"
[stores.drc]
site = "dr"
[defaults.all]
schedule = "* * * * *"
onsite_store = "pusat-data"
dr_store = "drc"
rpo = "26h"
retention_schedule = "* * * * *"
[defaults.all.retention]
last = 5
daily = 7
[defaults.all.verification]
schedule = "* * * * *"
read_share = "100%"
TOML
mkdir -p "$WORK/ctl/policies/pd"
cat > "$WORK/ctl/policies/pd/dinkes.toml" <<TOML
code = "DINKES"
name = "Dinas Kesehatan"
group = "kesehatan"
[wali_data]
name = "Nurhayati, S.KM."
nip = "198111072008042001"
[[hosts]]
name = "fs-dinkes"
[[hosts.sources]]
name = "berkas"
paths = ["$WORK/srv/dokumen", "/usr/share/doc/bash"]
exclude = ["*.tmp"]
TOML
cat > "$WORK/ctl/policies/pd/disdukcapil.toml" <<'TOML'
code = "DISDUKCAPIL"
name = "Dinas Kependudukan dan Pencatatan Sipil"
group = "kependudukan"
[wali_data]
name = "Andi Pratama"
nip = "198503122010011004"
[[hosts]]
name = "siak-db-01"
[[hosts.sources]]
name = "siak"
# A database dump as a stream (pg_dump -Fc siak on a real server).
command = "sh -c 'for i in $(seq 1 20000); do echo \"$i;NIK-$i;Penduduk $i\"; done'"
stream = "siak.dump"
TOML
for i in $(seq 1 30); do echo "laporan puskesmas $i" > "$WORK/srv/dokumen/laporan-$i.txt"; done
"$BIN" policy check "$WORK/ctl/policies"

echo "== controller run =="
"$BIN" controller run --config "$WORK/ctl/controller.toml" > "$WORK/controller.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do "$BIN" fleet status --json >/dev/null 2>&1 && break; sleep 0.1; done

for PD in DINKES DISDUKCAPIL; do
  echo "== $PD: the Wali Data creates the repository and registers it (the identity stays with them) =="
  "$BIN" repo init --repo "$WORK/pusat-data/$PD" --pd "$PD" --agent-credentials "$WORK/$PD.credentials"
  "$BIN" pd register --credentials "$WORK/$PD.credentials"
done

enroll() { # host pd
  "$BIN" controller enroll-token --config "$WORK/ctl/controller.toml" --host "$1" --pd "$2" --ttl 1h \
    | grep -o 'cadang-enroll-1\.[^ ]*' > "$WORK/$1.token"
  "$BIN" agent enroll --controller "$CADANG_CONTROLLER" --token-file "$WORK/$1.token" \
    --state-dir "$WORK/agents/$1" --host "$1"
  "$BIN" agent run --config "$WORK/agents/$1/agent.toml" > "$WORK/agent-$1.log" 2>&1 &
  PIDS+=($!)
}
echo "== enroll two agents (one-time tokens that carry the CA fingerprint) and start them =="
enroll fs-dinkes DINKES
enroll siak-db-01 DISDUKCAPIL

echo "== waiting for the scheduler: backup -> replicate -> verify (both sites) -> retention =="
done_cycle() {
  "$BIN" jobs --json 2>/dev/null | python3 -c '
import json, sys
jobs = json.load(sys.stdin)["jobs"]
ok = lambda j: j["state"] == "finished" and j["outcome"] == "succeeded"
need = [(k, pd, s) for pd in ("DINKES", "DISDUKCAPIL")
        for k, s in (("backup", None), ("replicate", None), ("verify", "onsite"),
                     ("verify", "dr"), ("retention", "onsite"), ("retention", "dr"))]
missing = [n for n in need if not any(ok(j) and j["kind"] == n[0] and j["pd"] == n[1]
           and (n[2] is None or j.get("site") == n[2]) for j in jobs)]
print(" ".join("/".join(x for x in n if x) for n in missing))
sys.exit(0 if not missing else 1)'
}
for i in $(seq 1 60); do
  if missing="$(done_cycle)"; then break; fi
  [ $((i % 6)) -eq 0 ] && echo "   still waiting for: $missing"
  sleep 5
done
done_cycle > /dev/null || { echo "the cycle did not complete; see $WORK/*.log" >&2; KEEP=1; exit 1; }

echo "== cadang fleet status =="
"$BIN" fleet status
echo "== cadang jobs =="
"$BIN" jobs
echo "== snapshots at the DR site (keyless view) =="
for PD in DINKES DISDUKCAPIL; do "$BIN" snapshots --repo "$WORK/drc/$PD"; done
echo
echo "demo finished: a whole cycle ran by itself."
echo "Look at: cadang fleet status, cadang jobs, cadang snapshots --pd CODE,"
echo "GET $CADANG_CONTROLLER/metrics (Prometheus), $CADANG_CONTROLLER/api/openapi.json;"
echo "logs in the controller's and agents' journald units when installed (deploy/systemd)."
