#!/usr/bin/env bash
# The fleet benchmark (issue 7 targets): AGENTS simulated agents (default
# 10,000; real enrollment, real mTLS long-polls and reports, no backups
# behind them) against one controller process on this machine, with
# every-minute backup schedules so jobs fall due all the time.
#   bash bench/fleet.sh                 # 10,000 agents
#   AGENTS=1000 STEADY=90 bash bench/fleet.sh
#   SCHEDULE='*/5 * * * *' STEADY=330 bash bench/fleet.sh   # a lighter schedule
#   BUILD=0 ...            # use the release binaries already built
#   PERF=40 PERF_DELAY=20  # also profile the controller for 40 s, 20 s after
#                          # the fleet enrolled: perf record (bench/work/perf.data)
#                          # and fsync/fdatasync counts (bench/work/perf-stat.txt);
#                          # PERF_RECORD=0: the counts only (no profiling overhead)
#   KEEP=1 ...             # keep the work directory (controller log, state file)
# Prints the figures as JSON and writes them to bench/work/fleet.json;
# bench/RESULTS-fleet.md records a run.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
AGENTS="${AGENTS:-10000}"
PDS="${PDS:-10}"
STEADY="${STEADY:-150}"
SCHEDULE="${SCHEDULE:-* * * * *}"   # every source's backup schedule
cd "$ROOT"
if [ "${BUILD:-1}" = 1 ]; then
  cargo build --release --quiet -p cadang -p cadang-fleet-bench
fi
BIN="$ROOT/target/release/cadang"
BENCH="$ROOT/target/release/fleet-bench"
# Every agent holds a connection; so does the controller for each of them.
ulimit -n "$(ulimit -Hn)"  # 10,000 agents need ~10,000 descriptors in each process

WORK="$(mktemp -d -t cadang-fleet.XXXXXX)"
trap 'kill -9 $(cat "$WORK/pid" 2>/dev/null) 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export CADANG_PASSPHRASE="bench passphrase" CADANG_SCRYPT_LOG_N=10

"$BIN" controller init --dir "$WORK/ctl" --listen "127.0.0.1:$PORT" --name 127.0.0.1 \
  --admin-nip 198503122010011004 > "$WORK/init.txt"
export CADANG_TOKEN="$(grep -m1 "^cadang-api-" "$WORK/init.txt")"
export CADANG_CONTROLLER="https://127.0.0.1:$PORT" CADANG_CA="$WORK/ctl/ca.pem"
mkdir -p "$WORK/onsite" "$WORK/dr"
cat >> "$WORK/ctl/controller.toml" <<TOML

[stores.pusat-data]
url = "$WORK/onsite"

[stores.drc]
url = "$WORK/dr"
TOML

python3 - "$WORK/ctl/policies" "$AGENTS" "$PDS" "$SCHEDULE" <<'PY'
import os, sys
d, n, pds, schedule = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
os.makedirs(f"{d}/pd", exist_ok=True)
open(f"{d}/regency.toml", "w").write(f'''name = "Kabupaten Bench"
zone = "Asia/Jakarta"
[stores.pusat-data]
site = "onsite"
[stores.drc]
site = "dr"
[defaults.all]
schedule = "{schedule}"
onsite_store = "pusat-data"
dr_store = "drc"
rpo = "26h"
retention_schedule = "0 5 1 1 *"
[defaults.all.retention]
daily = 7
[defaults.all.verification]
schedule = "0 3 1 1 *"
read_share = "1%"
''')
for p in range(pds):
    code = f"BENCH{p:02d}"
    with open(f"{d}/pd/{code.lower()}.toml", "w") as f:
        f.write(f'code = "{code}"\nname = "Dinas {p}"\ngroup = "lainnya"\n'
                f'[wali_data]\nname = "Wali {p}"\nnip = "198111072008042001"\n')
        for i in range(p, n, pds):
            f.write(f'[[hosts]]\nname = "h{i}"\n[[hosts.sources]]\nname = "data"\npaths = ["/srv/data"]\n')
PY

start_controller() {
  "$BIN" controller run --config "$WORK/ctl/controller.toml" >> "$WORK/controller.log" 2>&1 &
  echo $! > "$WORK/pid"
  for _ in $(seq 1 200); do
    "$BIN" fleet status --json > /dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "controller did not start; log:" >&2; tail -30 "$WORK/controller.log" >&2; exit 1
}
start_controller
for p in $(seq 0 $((PDS - 1))); do
  code="$(printf 'BENCH%02d' "$p")"
  "$BIN" repo init --repo "$WORK/onsite/$code" --pd "$code" --agent-credentials "$WORK/$code.cred" > /dev/null
  "$BIN" pd register --credentials "$WORK/$code.cred" > /dev/null
done

cat > "$WORK/restart.sh" <<SH
kill -9 \$(cat "$WORK/pid"); sleep 1
"$BIN" controller run --config "$WORK/ctl/controller.toml" >> "$WORK/controller.log" 2>&1 &
echo \$! > "$WORK/pid"
for _ in \$(seq 1 300); do "$BIN" fleet status --json > /dev/null 2>&1 && exit 0; sleep 0.1; done
exit 1
SH

mkdir -p "$ROOT/bench/work"
if [ -n "${PERF:-}" ]; then
  # Commits are what fsync counts; where the CPU goes is what perf record shows.
  ( until grep -q enrolled "$WORK/bench.err" 2> /dev/null || [ ! -d "$WORK" ]; do sleep 1; done
    sleep "${PERF_DELAY:-20}"; pid="$(cat "$WORK/pid")"
    perf stat -e 'syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync,task-clock' -p "$pid" \
      -o "$ROOT/bench/work/perf-stat.txt" -- sleep "$PERF" &
    if [ "${PERF_RECORD:-1}" = 1 ]; then
      perf record -F 49 --call-graph dwarf,16384 -p "$pid" -o "$ROOT/bench/work/perf.data" -- sleep "$PERF" 2> /dev/null
    fi
  ) &
fi
"$BENCH" --controller "$CADANG_CONTROLLER" --ca "$CADANG_CA" --agents "$AGENTS" --pds "$PDS" \
  --state "$WORK/agents" --steady-seconds "$STEADY" --restart-cmd "sh $WORK/restart.sh" \
  --pid-file "$WORK/pid" --json "$ROOT/bench/work/fleet.json" 2> >(tee "$WORK/bench.err" >&2)
