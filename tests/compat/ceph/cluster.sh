# Sourced by tests/compat/ceph.sh: a throwaway single-node Ceph cluster
# (one monitor, one manager, one bluestore OSD on a sparse file, one RGW with
# the beast frontend), all under $CEPH_DIR, all daemons plain processes
# (there is no systemd here), nothing under /etc.
#
# Needs: CEPH_DIR (created), MON_PORT, RGW_PORT (HTTP), RGW_TLS_PORT (HTTPS,
# with a certificate from a throwaway CA: $CEPH_DIR/tls/ca.pem). Sets
# CEPH_CONF for the `ceph`/`radosgw-admin` commands that follow.

ceph_packages=(ceph ceph-mon ceph-osd ceph-mgr radosgw)

# Installs Debian's packages when a daemon binary is missing. The packages'
# postinst scripts only enable systemd units, which do nothing without systemd.
install_ceph() {
  if command -v ceph-mon >/dev/null && command -v ceph-osd >/dev/null &&
    command -v ceph-mgr >/dev/null && command -v radosgw >/dev/null; then
    return 0
  fi
  echo "installing ${ceph_packages[*]} from Debian (apt)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${ceph_packages[@]}" >/dev/null
}

# N distinct free loopback TCP ports (all bound at once, then released; the
# race with another process taking one in between is acceptable here).
free_ports() {
  python3 -c 'import socket,sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))' "$1"
}

# ceph.conf: every path under $CEPH_DIR, cephx on (as in production), pools
# of size 1 with few placement groups so the RGW pools fit one OSD.
write_ceph_conf() {
  local fsid=$1 d=$CEPH_DIR
  cat >"$d/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$MON_PORT
mon initial members = a
public network = 127.0.0.0/8
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $d/keyring/\$name.keyring
run dir = $d/run
admin socket = $d/run/\$name.asok
pid file = $d/run/\$name.pid
log file = $d/log/\$name.log
# One OSD: no replicas, and CRUSH may place every copy on one host.
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
# RGW creates seven pools; 8 PGs each stays far below the per-OSD limit.
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
# Warnings about this shared build machine, not about the cluster.
mon data avail warn = 5
mon warn on insecure global id reclaim allowed = false
auth allow insecure global id reclaim = false
mon allow pool delete = true

[mon]
mon data = $d/mon/\$id
# mkfs copies mon..keyring into the monitor's data directory.
keyring = $d/mon/\$id/keyring

[mgr]
mgr data = $d/mgr/\$id

[osd]
osd data = $d/osd/\$id
osd objectstore = bluestore
# Bluestore on a sparse file: the production object store, no loop device
# or root-only block device needed; it only takes the space written.
bluestore block path = $d/osd/\$id.block
bluestore block create = true
bluestore block size = $((CEPH_OSD_GIB << 30))
osd memory target = 1073741824

[client.rgw.a]
rgw data = $d/rgw/a
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT ssl_endpoint=127.0.0.1:$RGW_TLS_PORT ssl_certificate=$d/tls/rgw.pem ssl_private_key=$d/tls/rgw.key
# debug rgw 1 logs one access line per request (method, path, status).
debug rgw = 1
EOF
}

# Waits up to $2 seconds for command $1 (a string) to succeed.
wait_for() {
  local what=$1 limit=$2 start=$SECONDS
  until eval "$what" >/dev/null 2>&1; do
    if ((SECONDS - start >= limit)); then
      echo "timed out after ${limit}s waiting for: $what" >&2
      return 1
    fi
    sleep 1
  done
}

start_mon() {
  local d=$CEPH_DIR fsid=$1
  ceph-authtool --create-keyring "$d/keyring/mon..keyring" --gen-key -n mon. \
    --cap mon 'allow *' >/dev/null
  ceph-authtool --create-keyring "$d/keyring/client.admin.keyring" --gen-key \
    -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' \
    --cap mds 'allow *' >/dev/null
  ceph-authtool "$d/keyring/mon..keyring" \
    --import-keyring "$d/keyring/client.admin.keyring" >/dev/null
  monmaptool --create --addv a "[v2:127.0.0.1:$MON_PORT]" --fsid "$fsid" \
    "$d/monmap" >/dev/null
  ceph-mon --mkfs -i a --monmap "$d/monmap" --keyring "$d/keyring/mon..keyring"
  ceph-mon -i a
  wait_for "timeout 10 ceph -s" 60
}

start_mgr() {
  ceph auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' \
    -o "$CEPH_DIR/keyring/mgr.x.keyring"
  ceph-mgr -i x
}

start_osd() {
  local uuid id
  uuid=$(cat /proc/sys/kernel/random/uuid)
  id=$(ceph osd new "$uuid")
  ceph auth get-or-create "osd.$id" mon 'allow profile osd' mgr 'allow profile osd' \
    osd 'allow *' -o "$CEPH_DIR/keyring/osd.$id.keyring"
  mkdir -p "$CEPH_DIR/osd/$id"
  ceph-osd -i "$id" --mkfs --osd-uuid "$uuid" 2>"$CEPH_DIR/log/osd-mkfs.log"
  ceph-osd -i "$id"
  wait_for "ceph osd stat | grep -q '1 up'" 120
}

# A CA and a server certificate for 127.0.0.1 signed by it, as an operator's
# private CA would be (webpki does not take a self-signed leaf as its own CA).
make_tls() {
  local t=$CEPH_DIR/tls
  mkdir -p "$t"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$t/ca.key" -out "$t/ca.pem" \
    -days 2 -subj "/CN=cadang compat CA" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout "$t/rgw.key" -out "$t/rgw.csr" \
    -subj "/CN=127.0.0.1" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
    >"$t/ext"
  openssl x509 -req -in "$t/rgw.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
    -out "$t/rgw.pem" -days 2 -extfile "$t/ext" 2>/dev/null
}

start_rgw() {
  make_tls
  ceph auth get-or-create client.rgw.a mon 'allow rw' osd 'allow rwx' mgr 'allow rw' \
    -o "$CEPH_DIR/keyring/client.rgw.a.keyring"
  radosgw -n client.rgw.a
  # RGW creates its pools on first start; it answers once they are active.
  wait_for "curl -fsS -o /dev/null http://127.0.0.1:$RGW_PORT/" 180
  wait_for "curl -fsS -o /dev/null --cacert $CEPH_DIR/tls/ca.pem https://127.0.0.1:$RGW_TLS_PORT/" 30
}

# HEALTH_OK, or HEALTH_WARN (a warning such as a recently crashed daemon does
# not keep RGW from serving); never HEALTH_ERR.
wait_healthy() {
  wait_for "ceph health | grep -Eq '^HEALTH_(OK|WARN)'" 120
  wait_for "ceph pg stat | grep -Eq '^[0-9]+ pgs: [0-9]+ active\+clean; '" 180
}

start_cluster() {
  local fsid
  fsid=$(cat /proc/sys/kernel/random/uuid)
  mkdir -p "$CEPH_DIR"/{keyring,run,log,mon,mgr,osd,rgw/a}
  write_ceph_conf "$fsid"
  export CEPH_CONF=$CEPH_DIR/ceph.conf
  start_mon "$fsid"
  start_mgr
  start_osd
  start_rgw
  wait_healthy
}

# Stops every daemon this cluster started (by its pid file, never by name).
stop_cluster() {
  local pidfile pid n
  for pidfile in "$CEPH_DIR"/run/*.pid; do
    [[ -f $pidfile ]] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
  done
  for pidfile in "$CEPH_DIR"/run/*.pid; do
    [[ -f $pidfile ]] || continue
    pid=$(cat "$pidfile")
    for ((n = 0; n < 30; n++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 1
    done
    kill -9 "$pid" 2>/dev/null || true
  done
}
