#!/usr/bin/env bash
# Issue 11 item 3: a backup's memory and start-up must not grow with the
# repository. Makes a repository with CHUNKS indexed chunks (default 5 M;
# `repo init` with the smallest chunk sizes the config allows, then the
# bench-only generator core/examples/synth_index.rs writes valid index files
# for synthetic packs: a real backup of that many chunks would take hours)
# and times one-file backups into it with GNU time:
#   run 1: the local chunk index is built from index/ (cold cache dir)
#   run 2: warm cache; merges the one index file run 1 wrote
#   run 3: warm cache again
# then, on the same repository (issue 11: prune and check <= 40 B RSS a chunk):
#   check            keyless structure check (every index entry against its
#                    pack's trailer, ranged reads)
#   check --read-data   the same plus every pack re-hashed
#   check --deep     with the identity (the passphrase given at repo init):
#                    every blob decrypted and verified on every core, every
#                    snapshot's trees walked and every chunk a file needs
#                    looked up
#   prune            a real prune (there is no dry run): REFERENCED % of each
#                    index file's packs are listed by snapshots, the rest are
#                    garbage, so it deletes packs and rewrites every index file
#   check            again, after the prune
# The synthetic packs are real (64-byte random chunks, encrypted, real
# trailers, named by their hash); each snapshot has real trees (a tree pack
# per index file: a root, a directory, one file per referenced pack whose
# extents are that pack's chunks), so --deep has every referenced chunk to
# look up.
#   bash bench/index.sh
#   CHUNKS=1000000 PER_PACK=16 bash bench/index.sh   # many small packs
#   BUILD=0 ...     # use the release binaries already built
#   KEEP=1 ...      # keep bench/work/index
# Prints the figures as JSON and writes them to bench/work/index.json;
# bench/RESULTS-index.md records a run.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CHUNKS="${CHUNKS:-5000000}"
PER_PACK="${PER_PACK:-16384}"   # chunks per synthetic pack (16 MiB packs of ~1 KiB chunks)
PER_FILE="${PER_FILE:-4}"       # packs per index file (what a backup writes: every 4 packs)
REFERENCED="${REFERENCED:-75}"  # % of each index file's packs a snapshot lists
cd "$ROOT"
if [ "${BUILD:-1}" = 1 ]; then
  cargo build --release --quiet -p cadang
  cargo build --release --quiet -p cadang-core --example synth_index
fi
BIN="$ROOT/target/release/cadang"
GEN="$ROOT/target/release/examples/synth_index"
WORK="$ROOT/bench/work/index"
rm -rf "$WORK"
mkdir -p "$WORK/src"
trap '[ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT
export CADANG_PASSPHRASE="bench passphrase" CADANG_SCRYPT_LOG_N=10

"$BIN" repo init --repo "$WORK/repo" --pd BENCH --agent-credentials "$WORK/agent.json" \
  --chunk-min 64 --chunk-avg 256 --chunk-max 1024 > /dev/null
gen_start=$(date +%s.%N)
"$GEN" "$WORK/repo" "$CHUNKS" "$PER_PACK" "$PER_FILE" "$WORK/agent.json" "$REFERENCED" > "$WORK/gen.txt"
gen_s=$(echo "$(date +%s.%N) - $gen_start" | bc)
index_bytes=$(du -sb "$WORK/repo/index" | cut -f1)
head -c 1048576 /dev/urandom > "$WORK/src/one.bin"

run() {  # run N: one-file backup, prints "max_rss_kib wall_s"
  sync
  /usr/bin/time -f "%M %e" -o "$WORK/time-$1.txt" \
    "$BIN" backup --repo "$WORK/repo" --credentials "$WORK/agent.json" \
      --cache-dir "$WORK/cache" --host "bench-$1" --json "$WORK/src/one.bin" > "$WORK/backup-$1.json"
  cat "$WORK/time-$1.txt"
}
read -r rss1 wall1 < <(run 1)
read -r rss2 wall2 < <(run 2)
read -r rss3 wall3 < <(run 3)
cache_bytes=$(du -sb "$WORK/cache/chunk-index" | cut -f1)
packs_bytes=$(du -sb "$WORK/repo/packs" | cut -f1)

timed() {  # timed NAME CMD...: runs CMD, prints "max_rss_kib wall_s exit"
  local name=$1; shift
  sync
  set +e
  /usr/bin/time -f "%M %e" -o "$WORK/time-$name.txt" "$@" > "$WORK/$name.json" 2> "$WORK/$name.err"
  local rc=$?
  set -e
  echo "$(cat "$WORK/time-$name.txt" | tail -1) $rc"
}
read -r rss_c wall_c rc_c < <(timed check "$BIN" check --repo "$WORK/repo" --credentials "$WORK/agent.json" --json)
read -r rss_r wall_r rc_r < <(timed check-read "$BIN" check --repo "$WORK/repo" --credentials "$WORK/agent.json" --read-data --json)
# --deep unlocks the identity with CADANG_PASSPHRASE (exported above).
read -r rss_d wall_d rc_d < <(timed check-deep "$BIN" check --repo "$WORK/repo" --deep --json)
read -r rss_p wall_p rc_p < <(timed prune "$BIN" prune --repo "$WORK/repo" --json)
read -r rss_a wall_a rc_a < <(timed check-after "$BIN" check --repo "$WORK/repo" --credentials "$WORK/agent.json" --json)

python3 - "$WORK" <<PY | tee "$ROOT/bench/work/index.json"
import json
def op(name, rss, wall, rc, keys):
    try:
        r = json.load(open("$WORK/" + name + ".json"))
    except Exception as e:
        r = {"unreadable": str(e)}
    d = {"max_rss_mib": round(rss / 1024, 1), "wall_s": wall, "exit": rc,
         "rss_bytes_per_chunk": round(rss * 1024 / $CHUNKS, 1)}
    for k in keys:
        v = r.get(k)
        d[k] = len(v) if isinstance(v, list) else v
    return d
check_keys = ["packs", "index_files", "snapshots", "trailers_checked", "packs_read", "unreferenced_packs", "errors", "warnings"]
deep_keys = check_keys + ["blobs_verified", "trees_checked"]
prune_keys = ["newly_marked", "deleted_packs", "rewritten_index_files", "deferred_marks"]
out = {
  "date": "$(date -u '+%Y-%m-%d %H:%M UTC')",
  "indexed_chunks": $CHUNKS, "chunks_per_pack": $PER_PACK, "packs_per_index_file": $PER_FILE,
  "generator": "$(cat "$WORK/gen.txt")", "generate_s": round($gen_s, 1),
  "index_dir_mib": round($index_bytes / 2**20, 1),
  "chunk_index_cache_mib": round($cache_bytes / 2**20, 1),
  "run1_cold_cache": {"max_rss_mib": round($rss1 / 1024, 1), "wall_s": $wall1},
  "run2_warm_cache": {"max_rss_mib": round($rss2 / 1024, 1), "wall_s": $wall2},
  "run3_warm_cache": {"max_rss_mib": round($rss3 / 1024, 1), "wall_s": $wall3},
  "packs_mib": round($packs_bytes / 2**20, 1), "referenced_percent": $REFERENCED,
  "check": op("check", $rss_c, $wall_c, $rc_c, check_keys),
  "check_read_data": op("check-read", $rss_r, $wall_r, $rc_r, check_keys),
  "check_deep": op("check-deep", $rss_d, $wall_d, $rc_d, deep_keys),
  "prune": op("prune", $rss_p, $wall_p, $rc_p, prune_keys),
  "check_after_prune": op("check-after", $rss_a, $wall_a, $rc_a, check_keys),
  "targets": {"max_rss_mib": 64, "warm_wall_s": 1.0, "prune_check_rss_bytes_per_chunk": 40, "check_deep_rss_bytes_per_chunk": 40},
}
print(json.dumps(out, indent=2))
PY
