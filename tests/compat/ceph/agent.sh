# Sourced by tests/compat/ceph.sh: the agent's restricted RGW user from
# docs/sites.md ("Agent store credentials that cannot destroy history"):
# a bucket policy that lets it list, read and create under its PD's prefix
# and delete only locks. The custodian (the bucket's owner) creates the
# repository; the agent backs up with its own keys; then, with the agent's
# keys, deletes and overwrites of history are tried and must be refused.
#
# Needs: what flow.sh needs, plus the s3.sh helpers.

AGENT_KEY=CADANGDINKESAGENT
AGENT_SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')

agent_policy() {
  # RGW 16 has no Object Ownership: what the agent writes is the agent's,
  # and without the last statement the bucket's owner cannot read it.
  local user='"arn:aws:iam:::user/dinkes-agent"' owner='"arn:aws:iam:::user/cadang"'
  local b=arn:aws:s3:::cadang-agent
  cat <<EOF
{"Version": "2012-10-17",
 "Statement": [
   {"Effect": "Allow", "Principal": {"AWS": [$user]},
    "Action": ["s3:ListBucket", "s3:ListBucketVersions"], "Resource": ["$b"]},
   {"Effect": "Allow", "Principal": {"AWS": [$user]},
    "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
    "Resource": ["$b/dinkes/*"]},
   {"Effect": "Allow", "Principal": {"AWS": [$user]},
    "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
    "Resource": ["$b/dinkes/locks/*"]},
   {"Effect": "Allow", "Principal": {"AWS": [$owner]},
    "Action": ["s3:*"], "Resource": ["$b", "$b/*"]}
 ]}
EOF
}

# The versioned bucket, the agent user and the policy, with the owner's keys.
agent_bucket() {
  local code
  create_bucket cadang-agent || return 1
  printf '<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>' \
    >"$CEPH_DIR/versioning.xml"
  code=$(s3status -X PUT --data-binary "@$CEPH_DIR/versioning.xml" \
    "$(rgw_url "/cadang-agent?versioning=")")
  [[ $code == 200 ]] || { echo "versioning: HTTP $code $(cat "$CEPH_DIR/last-body")"; return 1; }
  radosgw-admin user create --uid dinkes-agent --display-name "DINKES agent" \
    --access-key "$AGENT_KEY" --secret-key "$AGENT_SECRET" >/dev/null 2>&1 || return 1
  agent_policy >"$CEPH_DIR/agent-policy.json"
  code=$(s3status -X PUT --data-binary "@$CEPH_DIR/agent-policy.json" \
    "$(rgw_url "/cadang-agent?policy=")")
  [[ $code == 204 || $code == 200 ]] || { echo "policy: HTTP $code $(cat "$CEPH_DIR/last-body")"; return 1; }
}

as_agent() {
  AWS_ACCESS_KEY_ID=$AGENT_KEY AWS_SECRET_ACCESS_KEY=$AGENT_SECRET "$@"
}

agent_backup() {
  as_agent "$CADANG" backup --repo "$AGENT_REPO" --credentials "$WORK/agent-b.credentials" \
    --cache-dir "$WORK/cache-agent" --host pd-dinkes-02 "$WORK/data/dokumen"
}

# The first key listed under dinkes/$1/ (with the owner's keys).
first_key() {
  s3curl "$(rgw_url "/cadang-agent?list-type=2&prefix=dinkes%2F$1%2F")" |
    grep -o '<Key>[^<]*' | head -1 | cut -d'>' -f2
}

# try_as_agent WHAT KEY CURL-ARGS...: one request with the agent's keys;
# fails unless RGW refused it (403 AccessDenied, or 412 for a create-only PUT).
try_as_agent() {
  local what=$1 key=$2 code
  shift 2
  code=$(S3_KEY=$AGENT_KEY S3_SECRET=$AGENT_SECRET s3status "$@" "$(rgw_url "/cadang-agent/$key")")
  note "agent: $what -> HTTP $code"
  [[ $code == 403 || $code == 412 ]]
}

# The versions of key $1, newest first, one "VERSION-ID IS-LATEST" a line.
versions_of() {
  # '/' percent-encoded: curl signs the query as written, RGW as encoded.
  s3curl "$(rgw_url "/cadang-agent?prefix=${1//\//%2F}&versions=")" | python3 -c '
import re, sys
for v in re.findall(r"<Version>(.*?)</Version>", sys.stdin.read()):
    print(re.search(r"<VersionId>([^<]*)", v).group(1), re.search(r"<IsLatest>([^<]*)", v).group(1))'
}

# An overwrite that RGW let through (it ignores If-None-Match on a versioned
# bucket) must have left the original as an older version that the agent
# cannot delete; the owner then removes the rogue version, as documented.
rogue_version_is_harmless() {
  local key=$1 rogue original code
  rogue=$(versions_of "$key" | awk '$2 == "true" {print $1}')
  original=$(versions_of "$key" | awk '$2 != "true" {print $1}' | head -1)
  note "agent: the overwrite became version $rogue; the original $original is kept"
  [[ -n $original ]] || return 1
  try_as_agent "DELETE of the original version" "$key?versionId=$original" -X DELETE || return 1
  code=$(s3status -X DELETE "$(rgw_url "/cadang-agent/$key?versionId=$rogue")")
  note "owner: DELETE of the rogue version -> HTTP $code"
  [[ $code == 204 ]]
}

# Every attempt to destroy or replace history with the agent's keys.
agent_refusals() {
  local pack snap locks f=$CEPH_DIR/rogue bad=0
  pack=$(first_key packs)
  snap=$(first_key snapshots)
  locks=$(first_key locks)
  echo rogue >"$f"
  try_as_agent "DELETE of a pack" "$pack" -X DELETE || bad=1
  try_as_agent "DELETE of a snapshot" "$snap" -X DELETE || bad=1
  try_as_agent "DELETE of the config" dinkes/config -X DELETE || bad=1
  try_as_agent "PUT into another PD's prefix" other/x -T "$f" || bad=1
  try_as_agent "create-only PUT over a snapshot" "$snap" -T "$f" -H "If-None-Match: *" ||
    rogue_version_is_harmless "$snap" || bad=1
  note "agent: locks left after its backups: ${locks:-none}"
  [[ -z $locks ]] || bad=1
  return "$bad"
}

run_agent_flow() {
  AGENT_REPO="s3://cadang-agent/dinkes?endpoint=https://127.0.0.1:$RGW_TLS_PORT"
  step "agent: versioned bucket, user, bucket policy" agent_bucket || return 1
  step "agent: repo init by the bucket's owner" "$CADANG" repo init --repo "$AGENT_REPO" \
    --pd DINKES --agent-credentials "$WORK/agent-b.credentials" || return 1
  step "agent: backup with the agent's keys" agent_backup || return 1
  step "agent: second backup with the agent's keys" agent_backup || return 1
  step "agent: deletes and overwrites refused" agent_refusals || return 1
  step "agent: check --read-data by the owner" "$CADANG" check --repo "$AGENT_REPO" --read-data
}
