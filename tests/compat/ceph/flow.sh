# Sourced by tests/compat/ceph.sh: what an operator does with cadang against
# RGW, each command one recorded step (see `step` in ceph.sh), ending in a
# byte-for-byte comparison of the restores with the source.
#
# Needs: CADANG (binary), WORK (scratch dir), ONSITE, DR, LOCKED, PACED
# (repository URLs), the AWS_* keys and CADANG_PASSPHRASE in the environment.

# The restored copy of $1 under restore target $2 (restore recreates each
# absolute source path under the target).
restored_path() { echo "$2$1"; }

# Same names, types, link targets and bytes; `diff -r` compares file
# contents byte by byte and symlinks by their target (--no-dereference).
same_tree() {
  diff -r --no-dereference "$1" "$2" >"$WORK/diff.txt" 2>&1
}

# One line of the fields named in $2.. from the JSON file $1 ("a.b" descends).
json_fields() {
  python3 -c 'import json,sys
doc = json.load(open(sys.argv[1]))
def get(path):
    v = doc
    for k in path.split("."):
        v = v[k]
    return v
print(", ".join(f"{p}={get(p)}" for p in sys.argv[2:]))' "$@"
}

snapshot_count() {
  "$CADANG" snapshots --repo "$1" --json |
    python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}

backup_cmd() {
  "$CADANG" backup --repo "$ONSITE" --credentials "$WORK/agent.credentials" \
    --cache-dir "$WORK/cache" --host pd-dinkes-01 --json "$WORK/data"
}

# The second day: a new file, a changed one, a removed one.
change_dataset() {
  printf 'surat baru hari kedua\n' >"$WORK/data/dokumen/surat-baru.txt"
  printf 'INSERT INTO pegawai VALUES (-1, %s);\n' "'hari kedua'" >>"$WORK/data/db/simpeg.sql"
  rm -f "$WORK/data/dokumen/000/surat-00001.txt"
}

# A version id of one pack in the locked bucket, from ListObjectVersions.
some_locked_pack_version() {
  s3curl "$(rgw_url "/cadang-dr-locked?prefix=dinkes%2Fpacks%2F&versions=")" |
    python3 -c '
import re, sys
xml = sys.stdin.read()
m = re.search(r"<Key>([^<]+)</Key><VersionId>([^<]+)</VersionId>", xml)
print(m.group(1), m.group(2)) if m else sys.exit("no pack version listed")'
}

# Deleting a retained version must be refused by RGW itself, whatever cadang does.
locked_version_delete_is_refused() {
  local key version code
  read -r key version < <(some_locked_pack_version)
  code=$(s3status -X DELETE "$(rgw_url "/cadang-dr-locked/$key?versionId=$version")")
  note "DELETE of a retained pack version answered HTTP $code"
  [[ $code == 403 ]]
}

# forget --prune at the locked copy removes no pack and says why.
locked_prune_keeps_everything() {
  local before after out
  before=$(snapshot_count "$LOCKED")
  out=$("$CADANG" forget --repo "$LOCKED" --keep-last 1 --prune 2>&1) || return 1
  after=$(snapshot_count "$LOCKED")
  note "snapshots at the locked copy: $before before forget --prune, $after after"
  grep -q "under Object Lock until" <<<"$out" && [[ $before == "$after" ]]
}

run_flow() {
  step "make dataset (${CEPH_DATA_MIB} MiB)" python3 "$COMPAT/ceph/make_dataset.py" \
    "$WORK/data" "$CEPH_DATA_MIB" || return 1
  note "dataset: $(du -sh --apparent-size "$WORK/data" | cut -f1) apparent, $(find "$WORK/data" -type f | wc -l) files"
  step "repo init at RGW" "$CADANG" repo init --repo "$ONSITE" --pd DINKES \
    --agent-credentials "$WORK/agent.credentials" || return 1
  step "backup, first (full)" capture "$WORK/backup1.json" backup_cmd || return 1
  note "first backup: $(json_fields "$WORK/backup1.json" files bytes added_bytes new_chunks duration_ms)"
  change_dataset
  step "backup, second (incremental)" capture "$WORK/backup2.json" backup_cmd || return 1
  note "second backup: $(json_fields "$WORK/backup2.json" files bytes added_bytes new_chunks duration_ms)"
  step "check at RGW (structure)" "$CADANG" check --repo "$ONSITE" || return 1
  step "check --read-data at RGW" "$CADANG" check --repo "$ONSITE" --read-data || return 1
  step "replicate RGW -> RGW second bucket" capture "$WORK/replicate1.json" \
    "$CADANG" replicate --from "$ONSITE" --to "$DR" --pd DINKES --json || return 1
  note "replicate: $(json_fields "$WORK/replicate1.json" packs.files packs.bytes index.files snapshots.files already_present seconds)"
  step "replicate again (nothing to copy)" capture "$WORK/replicate2.json" \
    "$CADANG" replicate --from "$ONSITE" --to "$DR" --pd DINKES --json || return 1
  note "second replicate: $(json_fields "$WORK/replicate2.json" packs.files already_present seconds)"
  step "check --read-data at the DR bucket" "$CADANG" check --repo "$DR" --read-data || return 1
  # --bwlimit sends every body as a paced stream, not one buffer: the SDK
  # may frame a stream differently (aws-chunked with a trailing checksum).
  step "replicate --bwlimit 200MiB/s (streamed bodies), HTTPS" "$CADANG" replicate \
    --from "$ONSITE" --to "$PACED" --bwlimit 200MiB/s || return 1
  step "check --read-data at the paced copy" "$CADANG" check --repo "$PACED" --read-data || return 1
  step "restore latest from RGW" "$CADANG" restore --repo "$ONSITE" latest \
    --target "$WORK/restore-onsite" || return 1
  step "byte-for-byte: RGW restore = source" same_tree "$WORK/data" \
    "$(restored_path "$WORK/data" "$WORK/restore-onsite")" || return 1
  rm -rf "$WORK/restore-onsite"
  step "restore latest from the DR bucket" "$CADANG" restore --repo "$DR" latest \
    --target "$WORK/restore-dr" || return 1
  step "byte-for-byte: DR restore = source" same_tree "$WORK/data" \
    "$(restored_path "$WORK/data" "$WORK/restore-dr")" || return 1
  rm -rf "$WORK/restore-dr"
  step "replicate --lock-days 1 to an Object Lock bucket" "$CADANG" replicate \
    --from "$ONSITE" --to "$LOCKED" --pd DINKES --lock-days 1 || return 1
  step "RGW refuses DELETE of a retained pack version" locked_version_delete_is_refused || return 1
  step "forget --prune at the locked copy keeps every snapshot" locked_prune_keeps_everything || return 1
  step "check --read-data at the locked copy" "$CADANG" check --repo "$LOCKED" --read-data
}
