# Sourced by tests/compat/ceph.sh: the RGW user, its buckets, and raw S3
# probes of what RGW does with the headers cadang relies on.
#
# Needs: RGW_PORT, S3_KEY, S3_SECRET; CEPH_CONF (for radosgw-admin).

rgw_url() { echo "http://127.0.0.1:$RGW_PORT$1"; }

# curl with SigV4. RGW requires x-amz-content-sha256, which curl 7.88 does
# not add by itself; UNSIGNED-PAYLOAD is what the AWS SDKs send over TLS too.
s3curl() {
  curl -sS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$S3_KEY:$S3_SECRET" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}

# The HTTP status of one signed request (the body goes to $CEPH_DIR/last-body).
s3status() {
  s3curl -o "$CEPH_DIR/last-body" -w '%{http_code}' "$@"
}

create_rgw_user() {
  radosgw-admin user create --uid cadang --display-name "cadang compat" \
    --access-key "$S3_KEY" --secret-key "$S3_SECRET" >/dev/null 2>&1
}

# create_bucket NAME [locked]: a locked bucket has Object Lock (and so
# versioning) enabled at creation, as S3 requires.
create_bucket() {
  local name=$1 lock=() code
  [[ ${2:-} == locked ]] && lock=(-H "x-amz-bucket-object-lock-enabled: true")
  code=$(s3status -X PUT "${lock[@]}" "$(rgw_url "/$name")")
  if [[ $code != 200 ]]; then
    echo "creating bucket $name failed with HTTP $code: $(cat "$CEPH_DIR/last-body")" >&2
    return 1
  fi
}

# Prints "key=value" facts about RGW's S3 dialect, one a line, for the report.
probe_rgw() {
  local f=$CEPH_DIR/probe-object first second lock
  echo first >"$f"
  # Create-only PUT: cadang's write_new sends If-None-Match: * and relies on
  # 412 when the object exists (the HEAD before it can race).
  first=$(s3status -T "$f" -H "If-None-Match: *" "$(rgw_url /cadang-onsite/probe/inm)")
  echo second >"$f"
  second=$(s3status -T "$f" -H "If-None-Match: *" "$(rgw_url /cadang-onsite/probe/inm)")
  echo "if_none_match_put_new=$first"
  echo "if_none_match_put_existing=$second"
  echo "if_none_match_kept=$(s3curl "$(rgw_url /cadang-onsite/probe/inm)")"
  # The same on a versioned bucket (Object Lock buckets are versioned).
  first=$(s3status -T "$f" -H "If-None-Match: *" "$(rgw_url /cadang-dr-locked/probe/inm)")
  second=$(s3status -T "$f" -H "If-None-Match: *" "$(rgw_url /cadang-dr-locked/probe/inm)")
  echo "if_none_match_versioned_bucket=$first then $second"
  # The flexible checksums that current AWS SDKs send by default.
  echo "checksum_header_put=$(s3status -T "$f" -H "x-amz-checksum-crc32: AAAAAA==" \
    "$(rgw_url /cadang-onsite/probe/crc)")"
  echo "if_none_match_complete_multipart_existing=$(multipart_over_existing)"
  lock=$(s3curl "$(rgw_url "/cadang-dr-locked?object-lock=")")
  echo "object_lock_configuration=$(grep -o '<ObjectLockEnabled>[A-Za-z]*' <<<"$lock" | cut -d'>' -f2)"
  s3curl -X DELETE "$(rgw_url /cadang-onsite/probe/inm)" >/dev/null
  s3curl -X DELETE "$(rgw_url /cadang-onsite/probe/crc)" >/dev/null
}

# A one-part multipart upload onto an existing key whose Complete carries
# If-None-Match: * (cadang sends it there too); prints Complete's status
# and whether the original survived. 412 means RGW makes multipart create-only.
multipart_over_existing() {
  local key=/cadang-onsite/probe/mpu f=$CEPH_DIR/probe-part id etag code kept
  echo original >"$f"
  s3curl -T "$f" "$(rgw_url "$key")" >/dev/null
  id=$(s3curl -X POST "$(rgw_url "$key?uploads=")" | grep -o '<UploadId>[^<]*' | cut -d'>' -f2)
  head -c 1024 /dev/urandom >"$f"
  etag=$(s3curl -D - -o /dev/null -T "$f" "$(rgw_url "$key?partNumber=1&uploadId=$id")" |
    tr -d '\r' | awk -F': ' 'tolower($1) == "etag" {print $2}')
  printf '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>%s</ETag></Part></CompleteMultipartUpload>' \
    "$etag" >"$f"
  code=$(s3status -X POST -H "If-None-Match: *" --data-binary "@$f" "$(rgw_url "$key?uploadId=$id")")
  kept=$(s3curl "$(rgw_url "$key")" | head -c 8 | tr -d '\0')
  [[ $code == 200 ]] || s3curl -X DELETE "$(rgw_url "$key?uploadId=$id")" >/dev/null
  s3curl -X DELETE "$(rgw_url "$key")" >/dev/null
  echo "$code (original kept: $([[ $kept == original ]] && echo yes || echo no))"
}
