#!/usr/bin/env bash
# cadang against a real distributed engine: a throwaway single-node Ceph
# cluster with RGW, from Debian's packages, on this machine.
#
#   bash tests/compat/ceph.sh            # as root; ~10 minutes, ~2 GiB of disk
#
# 1. installs ceph, ceph-mon, ceph-osd, ceph-mgr and radosgw with apt if missing;
# 2. starts a monitor, a manager, one bluestore OSD on a sparse file and RGW
#    (beast, 127.0.0.1, a free port) under $CEPH_DIR, waits for HEALTH_OK/WARN;
# 3. creates an RGW user and buckets (one with Object Lock), probes RGW's
#    answers to If-None-Match and flexible checksums;
# 4. runs the S3 backend's tests against RGW (s3/tests/external_server.rs:
#    conformance suite, multipart, Object Lock, create-only writes on the
#    Object Lock bucket), with and without checksums=when-required, and the
#    create-only test on its own step (the same pack name twice and racing
#    writers must be refused although RGW ignores If-None-Match there);
# 5. repo init, two backups of $CEPH_DATA_MIB MiB of mixed data, check
#    --read-data, replicate to a second bucket, restores from both compared
#    byte for byte with the source, replicate --lock-days to the Object Lock
#    bucket and a refused delete there; an agent user restricted by the
#    bucket policy of docs/sites.md backs up and cannot delete or replace;
# 6. stops every daemon (by pid) and deletes $CEPH_DIR on exit, whatever happened.
#
# Environment: CEPH_DIR (default /tmp/cadang-ceph; deleted at the end),
# CEPH_DATA_MIB (default 300), CEPH_OSD_GIB (sparse OSD file size, default 20),
# CADANG (a cadang binary; default: `cargo build -p cadang`, target/debug/cadang),
# CEPH_RESULTS (where the step table is kept; default /tmp/cadang-ceph-results.txt),
# CEPH_KEEP=1 keeps the cluster running and its data (stop it with
# `bash tests/compat/ceph.sh --stop`).
# Exit code: 0 when every step passed, 1 otherwise (the table says which).
# Not part of tests/run.sh: it needs root, apt and several minutes.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
COMPAT=$ROOT/tests/compat
export CEPH_DIR=${CEPH_DIR:-/tmp/cadang-ceph}
export CEPH_CONF=$CEPH_DIR/ceph.conf
CEPH_DATA_MIB=${CEPH_DATA_MIB:-300}
CEPH_OSD_GIB=${CEPH_OSD_GIB:-20}
RESULTS=${CEPH_RESULTS:-/tmp/cadang-ceph-results.txt}
WORK=$CEPH_DIR/work
S3_KEY=CADANGCOMPAT0KEY
S3_SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')

# shellcheck source=tests/compat/ceph/cluster.sh
source "$COMPAT/ceph/cluster.sh"
# shellcheck source=tests/compat/ceph/s3.sh
source "$COMPAT/ceph/s3.sh"
# shellcheck source=tests/compat/ceph/flow.sh
source "$COMPAT/ceph/flow.sh"
# shellcheck source=tests/compat/ceph/agent.sh
source "$COMPAT/ceph/agent.sh"

if [[ ${1:-} == --stop ]]; then
  stop_cluster
  rm -rf "$CEPH_DIR"
  exit 0
fi

failed=0

note() { echo "    $*" | tee -a "$RESULTS"; }

# step NAME CMD...: runs CMD (output to $CEPH_DIR/log/steps.log), records
# ok/FAILED and the wall time in seconds.
step() {
  local name=$1 t0 t1 rc
  shift
  echo ">>> $name" >>"$CEPH_DIR/log/steps.log"
  t0=$(date +%s.%N)
  "$@" >>"$CEPH_DIR/log/steps.log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  local secs
  secs=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
  if ((rc == 0)); then
    printf '%-58s ok      %7ss\n' "$name" "$secs" | tee -a "$RESULTS"
  else
    failed=1
    printf '%-58s FAILED  %7ss  (exit %s)\n' "$name" "$secs" "$rc" | tee -a "$RESULTS"
    tail -n 15 "$CEPH_DIR/log/steps.log" | sed 's/^/      | /' | tee -a "$RESULTS"
  fi
  return "$rc"
}

# capture FILE CMD...: CMD's standard output into FILE (for --json results).
capture() {
  local out=$1
  shift
  "$@" >"$out"
}

teardown() {
  if [[ ${CEPH_KEEP:-0} == 1 ]]; then
    echo "CEPH_KEEP=1: cluster left running under $CEPH_DIR (RGW on 127.0.0.1:$RGW_PORT)" >&2
    return
  fi
  stop_cluster
  rm -rf "$CEPH_DIR"
}

# $CADANG if given; else a fresh `cargo build -p cadang`. If the tree does not
# build right now (other work in progress), the last target/debug/cadang is
# used and the table says so. Either way a copy under $CEPH_DIR runs every
# step, so a concurrent build cannot swap the binary in the middle.
cadang_binary() {
  local built=$ROOT/target/debug/cadang
  if [[ -z ${CADANG:-} ]]; then
    if ! (cd "$ROOT" && cargo build --quiet -p cadang); then
      [[ -x $built ]] || return 1
      note "cargo build -p cadang failed (see the step log); using the existing $built of $(date -u -r "$built" +%FT%TZ)"
    fi
    CADANG=$built
  fi
  cp "$CADANG" "$CEPH_DIR/cadang"
  CADANG=$CEPH_DIR/cadang
}

# Builds s3/tests/external_server.rs and sets EXTERNAL_TESTS to its
# executable. If the tree does not build right now, the newest one built
# before is used and the table says so.
external_tests_binary() {
  EXTERNAL_TESTS=$(cd "$ROOT" && cargo test --quiet --no-run --message-format=json \
    -p cadang-s3 --test external_server 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["executable"])')
  if [[ -z $EXTERNAL_TESTS ]]; then
    EXTERNAL_TESTS=$(find "$ROOT/target/debug/deps" -maxdepth 1 -type f -executable \
      -name 'external_server-*' -printf '%T@ %p\n' | sort -rn | head -1 | cut -d' ' -f2)
    [[ -n $EXTERNAL_TESTS ]] || return 1
    note "the S3 tests do not build right now; using $EXTERNAL_TESTS of $(date -u -r "$EXTERNAL_TESTS" +%FT%TZ)"
  fi
}

# The S3 backend's own tests against RGW; $1 is the endpoint, $2 the extra
# URL query, $3 (optional) a test name filter.
external_tests() {
  local q="endpoint=$1$2" filter=()
  [[ -n ${3:-} ]] && filter=("$3")
  CADANG_S3_TEST_URL="s3://cadang-compat/run?$q" \
    CADANG_S3_TEST_LOCKED_URL="s3://cadang-dr-locked/compat?$q" \
    "$EXTERNAL_TESTS" "${filter[@]}" --nocapture
}

# write_new on the Object Lock bucket, where RGW ignores If-None-Match: the
# same pack name twice must be refused with the first bytes kept, and of
# six racing writers of one name exactly one may win (s3/src/create_only.rs).
# Fails unless the one test ran (a filter that matches nothing passes).
create_only_on_locked_bucket() {
  local out
  out=$(external_tests "$1" "" create_only_writes_refuse_an_existing_pack 2>&1)
  local rc=$?
  echo "$out"
  ((rc == 0)) && grep -q "1 passed" <<<"$out"
}

main() {
  if [[ -e $CEPH_DIR ]]; then
    echo "$CEPH_DIR exists (another run, or CEPH_KEEP=1 left it): bash $0 --stop removes it" >&2
    exit 1
  fi
  install_ceph || {
    echo "could not install the Ceph packages with apt (see above)" >&2
    exit 1
  }
  read -r MON_PORT RGW_PORT RGW_TLS_PORT < <(free_ports 3)
  trap teardown EXIT
  mkdir -p "$CEPH_DIR/log" "$WORK"
  : >"$RESULTS"
  note "$(date -u +%FT%TZ) $(ceph --version | cut -d' ' -f1-5), $(uname -m), $(nproc) cores"
  note "$(openssl version), curl $(curl --version | head -1 | cut -d' ' -f2)"
  note "cadang $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)"
  step "start cluster (mon, mgr, bluestore OSD, RGW)" start_cluster || exit 1
  note "$(ceph health) after start; RGW on 127.0.0.1:$RGW_PORT"
  step "RGW user (radosgw-admin)" create_rgw_user || exit 1
  for b in cadang-onsite cadang-dr cadang-compat; do
    step "bucket $b" create_bucket "$b" || exit 1
  done
  step "bucket cadang-dr-locked (Object Lock)" create_bucket cadang-dr-locked locked || exit 1
  probe_rgw | while read -r line; do note "probe: $line"; done

  export AWS_ACCESS_KEY_ID=$S3_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET AWS_REGION=us-east-1
  unset AWS_PROFILE AWS_SESSION_TOKEN
  # The private CA, as an operator installs it (rustls reads SSL_CERT_FILE).
  export SSL_CERT_FILE=$CEPH_DIR/tls/ca.pem
  local https="https://127.0.0.1:$RGW_TLS_PORT" http="http://127.0.0.1:$RGW_PORT"
  step "build the S3 backend tests" external_tests_binary
  step "S3 backend tests, HTTPS, SDK default checksums" external_tests "$https" ""
  step "S3 backend tests, HTTP, checksums=when-required" external_tests "$http" "&checksums=when-required"
  step "create-only: same pack twice, racing writers (Object Lock bucket)" \
    create_only_on_locked_bucket "$https"

  step "build cadang" cadang_binary
  [[ -x ${CADANG:-} ]] || exit 1
  note "binary: $("$CADANG" --version)"
  export CADANG
  export CADANG_PASSPHRASE="ceph compat $(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  # The on-site store over HTTPS with the SDK's default checksums (what an
  # operator tries first); the DR copy over HTTP with checksums=when-required
  # (the documented setting for RGW 18), so both paths carry real data.
  ONSITE="s3://cadang-onsite/dinkes?endpoint=$https"
  DR="s3://cadang-dr/dinkes?endpoint=$http&checksums=when-required"
  LOCKED="s3://cadang-dr-locked/dinkes?endpoint=$https"
  PACED="s3://cadang-dr/paced?endpoint=$https"
  run_flow
  run_agent_flow
  note "RGW requests by method and status: $(grep -o '"[A-Z]* [^"]*" [0-9]*' \
    "$CEPH_DIR/log/client.rgw.a.log" | tr -d '"' | awk '{print $1, $NF}' | sort | uniq -c |
    awk '{printf "%s %s %s; ", $1, $2, $3}')"
  note "ceph df: $(ceph df | awk '/TOTAL/ {print $0}')"
  echo "results: $RESULTS" >&2
  exit "$failed"
}

main "$@"
