#!/usr/bin/env bash
# S3 figures (issue #3 targets): backup to an S3 store on loopback against the
# same backup to a local directory, and replication with --bwlimit, including
# an interrupted replication that must not send finished packs again.
# The S3 server is cadang-testkit's (s3s-fs with SigV4 over HTTP on loopback).
#
# The backup target compares cadang's two store paths, so the backup gets the
# same CPU in both runs (CPU 0) and the S3 server gets its own (CPU 1), as a
# storage server would on its own hardware. The same pair is also measured
# with everything sharing both cores, for information: there the test
# server's own work (an MD5 ETag of every object, its disk writes) competes
# with the backup for the same two cores.
# Writes bench/RESULTS-S3.md. Uses the dataset of bench/run.sh (run it first).
#
#   bash bench/s3.sh
set -euo pipefail
BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$BENCH/.." && pwd)"
WORK="$BENCH/work/s3"
DATA="$BENCH/work/data"
OUT="$BENCH/RESULTS-S3.md"
LIMIT_MIB=50
[ -d "$DATA" ] || { echo "no dataset at $DATA: run bash bench/run.sh first" >&2; exit 1; }

(cd "$ROOT" && cargo build --release -q -p cadang -p cadang-testkit)
CADANG="$ROOT/target/release/cadang"
S3SERVER="$ROOT/target/release/cadang-test-s3"

rm -rf "$WORK"; mkdir -p "$WORK"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
taskset -c 1 "$S3SERVER" "$WORK/server" "$PORT" onsite dr-site > "$WORK/server.log" 2>&1 &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null || true' EXIT
sleep 1
export AWS_ACCESS_KEY_ID=cadang-test-access AWS_SECRET_ACCESS_KEY=cadang-test-secret-0123456789abcdef
export CADANG_PASSPHRASE=bench-s3 CADANG_SCRYPT_LOG_N=10
EP="endpoint=http://127.0.0.1:$PORT&region=us-east-1"

timed() { # timed LABEL CMD... -> prints wall seconds
  local t0 t1
  sync
  t0=$(date +%s.%N)
  "${@:2}" > "$WORK/$1.out" 2> "$WORK/$1.err"
  t1=$(date +%s.%N)
  python3 -c "print(f'{$t1-$t0:.2f}')"
}

server_cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$SERVER_PID/stat"; }

# Initial backups, local and S3 alternately into fresh repositories; the best
# of each counts (single runs on this machine vary by ±20%).
# backups ROUNDS PIN -> "LOCAL S3 SERVER_CPU" (best local s, best S3 s, server
# CPU seconds of the best S3 run). PIN is a taskset CPU list for the backup.
backups() {
  local best_l=1e9 best_s=1e9 srv=0 round l s c0 c1
  for round in $(seq "$1"); do
    rm -rf "$WORK/local" "$WORK/local.creds" "$WORK/s3.creds"
    "$CADANG" repo init --repo "$WORK/local" --pd BENCH --agent-credentials "$WORK/local.creds" >/dev/null
    "$CADANG" repo init --repo "s3://onsite/bench$2-$round?$EP" --pd BENCH --agent-credentials "$WORK/s3.creds" >/dev/null
    l=$(timed "local-backup-$2-$round" taskset -c "$2" "$CADANG" backup --repo "$WORK/local" --credentials "$WORK/local.creds" --no-cache "$DATA")
    c0=$(server_cpu)
    s=$(timed "s3-backup-$2-$round" taskset -c "$2" "$CADANG" backup --repo "s3://onsite/bench$2-$round?$EP" --credentials "$WORK/s3.creds" --no-cache "$DATA")
    c1=$(server_cpu)
    read -r best_l best_s srv < <(python3 -c "
l, s, bl, bs, srv = $l, $s, $best_l, $best_s, $srv
print(min(l, bl), min(s, bs), round($c1 - $c0, 2) if s < bs else srv)")
  done
  echo "$best_l $best_s $srv"
}
read -r LOCAL S3 S3_SERVER_CPU < <(backups 3 0)
# The same with the backup and the server on both cores.
taskset -a -p -c 0,1 "$SERVER_PID" > /dev/null
read -r SHARED_LOCAL SHARED_S3 SHARED_SERVER_CPU < <(backups 2 0,1)
# The last local repository feeds replication.

# Replication with a limit, through a proxy that timestamps the bytes sent:
# the average over the run, and the most sent in any one-second window.
PPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 "$BENCH/byteproxy.py" "$PPORT" "$PORT" "$WORK/bytes.log" &
PROXY_PID=$!
trap 'kill $SERVER_PID $PROXY_PID 2>/dev/null || true' EXIT
sleep 1
PEP="endpoint=http://127.0.0.1:$PPORT&region=us-east-1"
REPL=$(timed replicate "$CADANG" replicate --from "$WORK/local" --to "s3://dr-site/full?$PEP" --bwlimit "${LIMIT_MIB}MiB/s" --json)
BURST=$(python3 - "$WORK/bytes.log" "$LIMIT_MIB" <<'EOF2'
import sys
ev = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
limit = float(sys.argv[2]) * 2**20
ev.sort()
best, j, acc = 0.0, 0, 0.0
for i in range(len(ev)):
    while j < len(ev) and ev[j][0] < ev[i][0] + 1.0:
        acc += ev[j][1]; j += 1
    if ev[i][0] + 1.0 <= ev[-1][0]:  # whole windows only
        best = max(best, acc)
    acc -= ev[i][1]
total = sum(n for _, n in ev)
span = ev[-1][0] - ev[0][0]
print(f"{best / limit:.3f} {total / span / limit:.3f} {span:.2f}")
EOF2
)
REPL_BYTES=$(python3 -c "import json; r=json.load(open('$WORK/replicate.out')); print(r['packs']['bytes']+r['index']['bytes']+r['snapshots']['bytes']+r['keys']['bytes'])")

# Interrupted replication: kill after 4 s, note what the target holds (inode
# and mtime of every pack), run again, and count packs rewritten.
"$CADANG" replicate --from "$WORK/local" --to "s3://dr-site/resume?$EP" --bwlimit "${LIMIT_MIB}MiB/s" > /dev/null 2>&1 &
PID=$!; sleep 4; kill -9 $PID 2>/dev/null || true; wait $PID 2>/dev/null || true
snapshot_packs() { find "$WORK/server/dr-site/resume/packs" -type f ! -name '.*' -printf '%f %i %T@\n' 2>/dev/null | sort; }
snapshot_packs > "$WORK/resume-before.txt"
"$CADANG" replicate --from "$WORK/local" --to "s3://dr-site/resume?$EP" --json > "$WORK/resume.out"
snapshot_packs > "$WORK/resume-after.txt"
BEFORE=$(wc -l < "$WORK/resume-before.txt")
RESENT=$(python3 - "$WORK/resume-before.txt" "$WORK/resume-after.txt" <<'EOF'
import sys
before = dict(l.split(" ", 1) for l in open(sys.argv[1]).read().splitlines())
after = dict(l.split(" ", 1) for l in open(sys.argv[2]).read().splitlines())
print(sum(1 for k, v in before.items() if after.get(k) != v))
EOF
)
"$CADANG" check --repo "s3://dr-site/resume?$EP" --read-data > "$WORK/resume-check.out" 2>&1 && CHECK=pass || CHECK=FAIL

# Keyless verification and repair at an S3 site (no target in the issue; for
# the performance report): a read-data check of the full DR copy, then the
# same copy repaired from the local store after every one of its packs was
# deleted behind the store's back.
VERIFY=$(timed verify "$CADANG" check --repo "s3://dr-site/full?$EP" --read-data)
find "$WORK/server/dr-site/full/packs" -type f -delete
REPAIR=$(timed repair "$CADANG" repair --repo "s3://dr-site/full?$EP" --from "$WORK/local" --json)
REPAIRED=$(python3 -c "import json; r=json.load(open('$WORK/repair.out')); print(len(r['replaced']), len(r['unrepaired']))")
"$CADANG" check --repo "s3://dr-site/full?$EP" --read-data > "$WORK/repair-check.out" 2>&1 && RCHECK=pass || RCHECK=FAIL

python3 - "$OUT" "$LOCAL" "$S3" "$S3_SERVER_CPU" "$SHARED_LOCAL" "$SHARED_S3" "$SHARED_SERVER_CPU" "$REPL" "$REPL_BYTES" "$LIMIT_MIB" "$BEFORE" "$RESENT" "$CHECK" "$BURST" "$WORK/replicate.out" "$VERIFY" "$REPAIR" "$REPAIRED" "$RCHECK" <<'EOF'
import sys, datetime, json
out, local, s3, srv, slocal, ss3, ssrv, repl, rbytes, limit, before, resent, check, burst = sys.argv[1:15]
replicated, verify, repair, repaired, rcheck = sys.argv[15:]
pack_bytes = json.load(open(replicated))["packs"]["bytes"]
replaced, unrepaired = map(int, repaired.split())
verify, repair = float(verify), float(repair)
burst, wire_avg, span = map(float, burst.split())
local, s3, repl, rbytes, limit = float(local), float(s3), float(repl), int(rbytes), float(limit)
rate = rbytes / repl / 2**20
ratio = local / s3
lines = [
    "# cadang S3 figures",
    "",
    f"- date: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; dataset: bench/work/data (scale of the last bench/run.sh); "
    "S3 server: cadang-testkit (s3s-fs, SigV4, HTTP on loopback), same machine, pinned to CPU 1",
    "",
    "| target (issue #3) | figure | goal | result |",
    "|---|---:|---|---|",
    f"| backup to S3 vs local directory; backup on CPU 0 in both runs, S3 server on CPU 1 (best of 3 each) | local {local:.2f} s, S3 {s3:.2f} s: S3 at {ratio*100:.0f}% of local throughput (the server used {float(srv):.1f} CPU-s) | ≥ 80% | {'pass' if ratio >= 0.8 else 'FAIL'} |",
    f"| (the same with backup and server sharing both cores, best of 2 each) | local {float(slocal):.2f} s, S3 {float(ss3):.2f} s: {float(slocal)/float(ss3)*100:.0f}% (the server used {float(ssrv):.1f} CPU-s) | for information | |",
    f"| replication average rate with --bwlimit {limit:.0f}MiB/s, on the wire (first to last byte sent) | {wire_avg*100:.1f}% of the limit over {span:.1f} s | within 5% | {'pass' if abs(wire_avg-1) <= 0.05 else 'FAIL'} |",
    f"| (the same, by the command's wall time: start-up, listing and the final files included) | {rbytes/2**20:.1f} MiB in {repl:.2f} s = {rate:.1f} MiB/s ({(rate/limit-1)*100:+.1f}%) | for information | |",
    f"| replication bursts over any 1 s window (bytes on the wire, timestamped by a proxy) | at most {burst*100:.1f}% of the limit | ≤ 110% | {'pass' if burst <= 1.10 else 'FAIL'} |",
    f"| interrupted replication (kill -9 after 4 s), rerun | {before} packs were at the target before the rerun; {resent} of them were written again; target check --read-data: {check} | 0 re-sent | {'pass' if int(resent) == 0 and int(before) > 0 and check == 'pass' else 'FAIL'} |",
    f"| check --read-data of the S3 DR copy (every pack re-hashed, keyless) | {pack_bytes/2**20:.0f} MiB of packs in {verify:.2f} s = {pack_bytes/2**20/verify:.0f} MiB/s | for information | |",
    f"| repair of the S3 DR copy from the local store after all its packs were deleted | {repair:.2f} s: {replaced} files replaced, {unrepaired} unrepaired; check --read-data afterwards: {rcheck} | for information | {'pass' if unrepaired == 0 and rcheck == 'pass' else 'FAIL'} |",
    "",
    "Logs: bench/work/s3/.",
]
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
