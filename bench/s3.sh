#!/usr/bin/env bash
# S3 figures (issue #3 targets): backup to an S3 store on loopback against the
# same backup to a local directory, and replication with --bwlimit, including
# an interrupted replication that must not send finished packs again.
# The S3 server is cadang-testkit's (s3s-fs with SigV4 over HTTP on loopback).
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
"$S3SERVER" "$WORK/server" "$PORT" onsite dr-site > "$WORK/server.log" 2>&1 &
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

"$CADANG" repo init --repo "$WORK/local" --pd BENCH --agent-credentials "$WORK/local.creds" >/dev/null
"$CADANG" repo init --repo "s3://onsite/bench?$EP" --pd BENCH --agent-credentials "$WORK/s3.creds" >/dev/null
LOCAL=$(timed local-backup "$CADANG" backup --repo "$WORK/local" --credentials "$WORK/local.creds" --no-cache "$DATA")
S3=$(timed s3-backup "$CADANG" backup --repo "s3://onsite/bench?$EP" --credentials "$WORK/s3.creds" --no-cache "$DATA")

# Replication with a limit: the average rate over the whole run.
REPL=$(timed replicate "$CADANG" replicate --from "$WORK/local" --to "s3://dr-site/full?$EP" --bwlimit "${LIMIT_MIB}MiB/s" --json)
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

python3 - "$OUT" "$LOCAL" "$S3" "$REPL" "$REPL_BYTES" "$LIMIT_MIB" "$BEFORE" "$RESENT" "$CHECK" <<'EOF'
import sys, datetime
out, local, s3, repl, rbytes, limit, before, resent, check = sys.argv[1:]
local, s3, repl, rbytes, limit = float(local), float(s3), float(repl), int(rbytes), float(limit)
rate = rbytes / repl / 2**20
ratio = local / s3
lines = [
    "# cadang S3 figures",
    "",
    f"- date: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; dataset: bench/work/data (scale of the last bench/run.sh); "
    "S3 server: cadang-testkit (s3s-fs, SigV4, HTTP on loopback), same machine",
    "",
    "| target (issue #3) | figure | goal | result |",
    "|---|---:|---|---|",
    f"| backup to S3 vs local directory | local {local:.2f} s, S3 {s3:.2f} s: S3 at {ratio*100:.0f}% of local throughput | ≥ 80% | {'pass' if ratio >= 0.8 else 'FAIL'} |",
    f"| replication average rate with --bwlimit {limit:.0f}MiB/s | {rbytes/2**20:.1f} MiB in {repl:.2f} s = {rate:.1f} MiB/s ({(rate/limit-1)*100:+.1f}%) | within 5% | {'pass' if abs(rate/limit-1) <= 0.05 else 'FAIL'} |",
    f"| replication bursts over any 1 s window | not measured | ≤ +10% | not shown: the limiter paces whole files (a pack is one atomic write), so one second can carry one pack (≤ 16 MiB) above the limit |",
    f"| interrupted replication (kill -9 after 4 s), rerun | {before} packs were at the target before the rerun; {resent} of them were written again; target check --read-data: {check} | 0 re-sent | {'pass' if int(resent) == 0 and int(before) > 0 and check == 'pass' else 'FAIL'} |",
    "",
    "Logs: bench/work/s3/.",
]
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
