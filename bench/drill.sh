#!/usr/bin/env bash
# Restore drills (issue 8 targets):
#  1. a drill's restore from the DR store vs `cadang restore` on the same
#     store and the same snapshot (target: >= 80 % of its throughput);
#  2. report rendering (signed JSON, HTML, PDF) for a drill of 100,000
#     files (target: < 1 s each).
# Writes bench/RESULTS-drill.md.
#
#   bash bench/drill.sh                 # 512 MiB in 256 files
#   DRILL_MB=128 bash bench/drill.sh    # quicker
#   CARGO_PROFILE=release bash bench/drill.sh
set -euo pipefail

BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$BENCH/.." && pwd)"
W="${BENCH_WORK:-$BENCH/work}/drill"
MB="${DRILL_MB:-512}"
FILES="${DRILL_FILES:-256}"
PROFILE="${CARGO_PROFILE:-dev}"
say() { echo "[drill-bench] $*" >&2; }

cd "$ROOT"
profile_flag=(); bin_dir=debug
if [ "$PROFILE" = release ]; then profile_flag=(--release); bin_dir=release; fi
say "building cadang and the bench tests ($PROFILE)"
cargo build -q -p cadang "${profile_flag[@]}"
CADANG="${CADANG_BIN:-$ROOT/target/$bin_dir/cadang}"

rm -rf "$W"; mkdir -p "$W/data" "$W/tmp"
export CADANG_PASSPHRASE="bench passphrase for drills"
export CADANG_SCRYPT_LOG_N=10
say "dataset: $MB MiB in $FILES files (incompressible)"
python3 - "$W/data" "$MB" "$FILES" <<'PY'
import os, sys
root, mb, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
size = mb * 1024 * 1024 // n
for i in range(n):
    d = os.path.join(root, f"dir{i % 16:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"file{i:05d}.bin"), "wb") as f:
        f.write(os.urandom(size))
PY

STORE="$W/dr-store"
"$CADANG" repo init --repo "$STORE" --pd BENCH --agent-credentials "$W/agent.json" >/dev/null
"$CADANG" backup --repo "$STORE" --credentials "$W/agent.json" --no-cache "$W/data" >/dev/null
"$CADANG" repo export-identity --repo "$STORE" --out "$W/identity.txt" >/dev/null
BYTES=$(du -sb "$W/data" | cut -f1)

# Page cache warm for both, the same way: read the store once.
cat "$STORE"/packs/*/* >/dev/null 2>&1 || true

say "plain restore (what cadang restore runs) vs drill restore + verify, 3 runs each"
restore_best=""; drill_best=""; verify_best=""
for i in 1 2 3; do
  line=$(CADANG_BENCH_STORE="$STORE" CADANG_BENCH_IDENTITY="$W/identity.txt" CADANG_BENCH_TMP="$W/tmp" \
    cargo test -q -p cadang-agent "${profile_flag[@]}" --lib bench_drill_restore -- --ignored --nocapture 2>/dev/null \
    | grep '^{"bytes"' | tail -1)
  p=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['plain_restore_seconds'])" "$line")
  r=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['restore_seconds'])" "$line")
  v=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['verify_seconds'])" "$line")
  restore_best=$(python3 -c "a='$restore_best'; print(min(float(a), $p) if a else $p)")
  drill_best=$(python3 -c "a='$drill_best'; print(min(float(a), $r) if a else $r)")
  verify_best=$(python3 -c "a='$verify_best'; print(min(float(a), $v) if a else $v)")
done

say "report rendering, 100,000 files"
render=$(cargo test -q -p cadang-controller "${profile_flag[@]}" --lib bench_render_100k_files -- --ignored --nocapture 2>/dev/null \
  | grep '^{"files"' | tail -1)

python3 - "$BYTES" "$restore_best" "$drill_best" "$verify_best" "$render" "$MB" "$FILES" "$PROFILE" > "$BENCH/RESULTS-drill.md" <<'PY'
import json, sys, platform, os
b, restore, drill, verify = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
render = json.loads(sys.argv[5]); mb, files, profile = sys.argv[6], sys.argv[7], sys.argv[8]
mib = b / 1048576
ratio = (mib / drill) / (mib / restore)
ratio_v = (mib / (drill + verify)) / (mib / restore)
ok = lambda c: "met" if c else "NOT met"
print(f"""# Restore drills — benchmark results

`bash bench/drill.sh` (DRILL_MB={mb}, DRILL_FILES={files}, cargo profile `{profile}`),
{os.cpu_count()} cores shared with other work, {platform.platform()}.
Store: a local directory (the DR store of the drill, the same for both);
page cache warm for both. Best of three runs each, both timed in one
process (`bench_drill_restore` in `agent/src/daemon/drill.rs`) with the same
library calls `cadang restore` makes.

## 1. Drill restore vs `cadang restore` (target ≥ 80 %)

| | seconds | MiB/s |
|---|---:|---:|
| `cadang restore`'s code path (open, index, `restore::restore`) | {restore:.2f} | {mib/restore:.0f} |
| drill: restore stage | {drill:.2f} | {mib/drill:.0f} |
| drill: verification (re-hash every chunk) | {verify:.2f} | {mib/verify if verify else 0:.0f} |
| drill: restore + verification | {drill+verify:.2f} | {mib/(drill+verify):.0f} |

Drill restore throughput is **{ratio*100:.0f} %** of `cadang restore` ({ok(ratio >= 0.8)});
with the verification of every file it is {ratio_v*100:.0f} % (the target
counts the restore; verification is the drill's own extra work and is
measured against the RTO separately).

## 2. Report rendering, a drill of 100,000 files (target < 1 s)

Every one of the 100,000 files listed as a mismatch (the largest body a
report can have; the renderings list only the first mismatches, the JSON all).

| | seconds | bytes | target |
|---|---:|---:|---|
| sign + canonical JSON | {render['json_seconds']:.3f} | {render['json_bytes']} | {ok(render['json_seconds'] < 1)} |
| HTML | {render['html_seconds']:.3f} | {render['html_bytes']} | {ok(render['html_seconds'] < 1)} |
| PDF | {render['pdf_seconds']:.3f} | {render['pdf_bytes']} | {ok(render['pdf_seconds'] < 1)} |
""")
PY
say "wrote bench/RESULTS-drill.md"
cat "$BENCH/RESULTS-drill.md"
