#!/usr/bin/env bash
# Makes the seed corpora of every fuzz target from real files: a small
# repository made with `cadang repo init` + `backup` + `export`, the example
# policy set, and wire messages in the shape the agent sends them.
#
#   bash fuzz/seed.sh [CADANG_BINARY]     (default target/debug/cadang)
#
# Seeds go to fuzz/seeds/<target>/ (not committed); `bash fuzz/run.sh`
# fuzzes from them and minimises the result into fuzz/corpus/<target>/.
# Trees are encrypted inside packs, so the tree seeds are written in the
# encoder's format (tree.rs) rather than taken from a pack.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bin=${1:-$root/target/debug/cadang}
out=$here/seeds
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CADANG_PASSPHRASE="kata sandi fuzz" CADANG_SCRYPT_LOG_N=10

rm -rf "$out"
for t in pack_trailer blob index snapshot tree config credentials manifest policies wire_poll wire_reports wire_enroll; do
  mkdir -p "$out/$t"
done

# A small repository: a few short files keep every pack a few KiB, so the
# fuzzer mutates whole packs quickly.
repo=$work/repo creds=$work/agent.credentials src=$work/src
mkdir -p "$src/dokumen"
printf 'laporan realisasi anggaran 2026\n' > "$src/laporan.txt"
seq 1 400 | sed 's/^/INSERT INTO pasien VALUES (/; s/$/);/' > "$src/dump.sql"
head -c 3000 /dev/urandom > "$src/dokumen/acak.bin"
ln -s laporan.txt "$src/terbaru.txt"
"$bin" repo init --repo "$repo" --pd DINKES --agent-credentials "$creds" >/dev/null
"$bin" backup --repo "$repo" --credentials "$creds" --cache-dir "$work/cache" "$src" >/dev/null
printf 'perubahan\n' >> "$src/laporan.txt"
"$bin" backup --repo "$repo" --credentials "$creds" --cache-dir "$work/cache" "$src" >/dev/null
mkdir -p "$work/disk"
"$bin" export --repo "$repo" --to "$work/disk" --state-dir "$work/state" >/dev/null

cp "$repo/config" "$out/config/repo-config"
cp "$creds" "$out/credentials/agent-credentials"
for f in "$repo"/index/*; do cp "$f" "$out/index/"; done
for f in "$repo"/packs/*/*; do
  [ "$(stat -c %s "$f")" -le 65536 ] && cp "$f" "$out/pack_trailer/"
done
# Snapshot target: 0x00 + a whole file, or 0x01 + a payload (re-signed by the target).
for f in "$repo"/snapshots/*; do
  n=$(basename "$f")
  { printf '\x00'; cat "$f"; } > "$out/snapshot/file-$n"
  { printf '\x01'; python3 -c 'import json,sys; sys.stdout.write(json.load(open(sys.argv[1]))["payload"])' "$f"; } > "$out/snapshot/payload-$n"
done
cp "$work"/disk/cadang-export-*/manifest.json "$out/manifest/"

# Blobs: raw length (u32 LE), flags (bit 0 zstd, bit 1 tree), stored bytes.
blob() { # name raw-file flags compress?
  local len; len=$(stat -c %s "$2")
  python3 -c 'import struct,sys; sys.stdout.buffer.write(struct.pack("<IB", int(sys.argv[1]), int(sys.argv[2])))' "$len" "$3" > "$out/blob/$1"
  if [ "$4" = yes ]; then zstd -q -3 -c "$2" >> "$out/blob/$1"; else cat "$2" >> "$out/blob/$1"; fi
}
blob zstd-sql "$src/dump.sql" 1 yes
blob plain-text "$src/laporan.txt" 0 no
blob zstd-random "$src/dokumen/acak.bin" 1 yes

# Trees in the encoder's format: a file, a sparse file, a non-UTF-8 name,
# a directory, a symlink.
h1=$(printf a | sha256sum | cut -c1-64) h2=$(printf b | sha256sum | cut -c1-64)
cat > "$out/tree/dir" <<JSON
{"nodes":[{"name":"dokumen","type":"dir","mode":493,"uid":1000,"gid":1000,"user":"pd","group":"pd","mtime_ns":1764720000000000000,"size":0,"subtree":"$h1"},{"name":"laporan.txt","type":"file","mode":420,"uid":1000,"gid":1000,"mtime_ns":1764720000123456789,"size":42,"content":["$h2"]},{"name":{"hex":"61fffe7a"},"type":"file","mode":384,"uid":0,"gid":0,"mtime_ns":-5,"size":4096,"links":2,"device":2049,"inode":77,"content":["$h1"]},{"name":"vm.img","type":"file","mode":420,"uid":0,"gid":0,"mtime_ns":0,"size":8392704,"sparse":true,"content":[4194304,"$h2",4194304]},{"name":"terbaru.txt","type":"symlink","mode":511,"uid":0,"gid":0,"mtime_ns":0,"target":"laporan.txt"},{"name":"tty","type":"chardev","mode":438,"uid":0,"gid":5,"mtime_ns":0,"rdev":1280}]}
JSON
printf '{"nodes":[]}' > "$out/tree/empty"

# Policies: the example regency and its PD files, split as decoders::POLICY_SPLIT.
ex=$root/policies/examples/kabupaten-contoh
{ cat "$ex/regency.toml"; for f in "$ex"/pd/*.toml; do printf '\n#--8<-- pd --8<--\n'; cat "$f"; done; } > "$out/policies/kabupaten-contoh"
{ cat "$ex/regency.toml"; printf '\n#--8<-- pd --8<--\n'; cat "$ex/pd/dinkes.toml"; } > "$out/policies/one-pd"

# Wire messages as the agent sends them (proto/src/agent.rs).
cat > "$out/wire_poll/idle" <<'JSON'
{"proto":1,"policy_version":"","running":[],"wait_seconds":25}
JSON
cat > "$out/wire_poll/running" <<'JSON'
{"proto":1,"policy_version":"b3:6f1c","running":[{"job_id":"job-0001","source":"simpeg-db","started":"2026-12-03T01:00:00Z","files":120,"bytes":734003200,"rate":52428800}],"wait_seconds":25}
JSON
cat > "$out/wire_reports/batch" <<'JSON'
{"reports":[{"report_id":"r-01","job_id":"job-0001","kind":{"type":"backup","source":"simpeg-db","slot":1764723600,"snapshot":"9f2c","stats":{"files":120,"dirs":4,"bytes_read":734003200,"bytes_added":1048576,"problems":["/data/locked.db: permission denied"]},"signals":{"version":1,"files_total":120,"files_before":118,"files_changed":3,"files_new":2,"files_deleted":0,"entropy_transitions":0,"extension_changed":0,"new_data_bytes":1048576,"new_data_incompressible_bytes":1024}},"started":"2026-12-03T01:00:00Z","finished":"2026-12-03T01:02:00Z","outcome":"succeeded","message":""},{"report_id":"r-02","kind":{"type":"restore","request_id":"rq-7","detail":{"files":3}},"started":"2026-12-03T02:00:00Z","finished":"2026-12-03T02:00:05Z","outcome":"failed","message":"the target directory is not empty"}]}
JSON
cat > "$out/wire_enroll/request" <<'JSON'
{"proto":1,"token":"q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80","host":"dinkes-db01","csr_pem":"-----BEGIN CERTIFICATE REQUEST-----\nMIIBAA==\n-----END CERTIFICATE REQUEST-----\n","age_recipient":"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p","signing_public_key":"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"}
JSON
du -sh "$out"
