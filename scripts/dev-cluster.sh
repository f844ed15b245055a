#!/usr/bin/env bash
# A real single-host Ceph cluster for development and tests: one monitor, one bluestore OSD on a
# sparse file, cephx on, no mgr unless asked; pools images, volumes, vms, backups (rbd-initialised);
# clients client.glance and client.cinder with the caps OpenStack gives them. Everything (conf,
# keyrings, data, logs, pid files, sockets) lives in one state directory; nothing goes to /etc or /var.
#
# Usage: scripts/dev-cluster.sh up|down|status|env|mgr|osds [--dir DIR] [--mon-port PORT]
#                               [--osd-size SIZE] [--min-compat-client luminous|mimic] [--mgr] [--keep]
#   mgr                   start a ceph-mgr (mgr.x, with its always-on pg_autoscaler) on a running
#                         cluster and wait until `ceph osd pool autoscale-status` answers; does
#                         nothing when one already runs. Only the pg tests need it, so `up` starts
#                         none by default (rbdkit itself never needs a mgr).
#   osds --root NAME [--count N]
#                         add OSDs (default 3) under a CRUSH root NAME of their own (one host
#                         bucket each), so the default root's pools are not moved; does nothing
#                         when NAME already has N OSDs up. For erasure-coded pools and two-root
#                         tests.
#   --rootfs DIR          `up` runs the cluster from a root filesystem of another Ceph release
#                         (scripts/ceph-rootfs.sh up prints DIR); later commands on the same
#                         --dir find it themselves
#   --mgr                 `up` also starts the mgr
#   --dir                 state directory (env RBDKIT_CLUSTER_DIR; default <repo>/.state/cluster)
#   --mon-port            monitor msgr2 port (env RBDKIT_MON_PORT; default 3300, msgr1 on 6789;
#                         any other PORT puts msgr1 on PORT+1000). Keep outside 6800-7300 (OSDs).
#   --osd-size            size of the OSD's sparse block file (default 20G; 4G is about the
#                         smallest that boots comfortably: bluestore keeps ~1.5 GiB for itself)
#   --min-compat-client   luminous (default: clones are v1, need protected snapshots) or mimic (v2)
#   down --keep           stop the daemons but keep the state directory
# `env` prints `export CEPH_CONF=...` for eval. Every ceph call has a timeout.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-}
[ -n "$cmd" ] && shift
DIR=${RBDKIT_CLUSTER_DIR:-$ROOT/.state/cluster}
MON_PORT=${RBDKIT_MON_PORT:-3300}
OSD_SIZE=20G
COMPAT=luminous
KEEP=0
MGR=0
ROOT_NAME=
COUNT=3
ROOTFS=
ARGS=("$@")
while [ $# -gt 0 ]; do
  case $1 in
    --dir) DIR=$2; shift 2;;
    --mon-port) MON_PORT=$2; shift 2;;
    --osd-size) OSD_SIZE=$2; shift 2;;
    --min-compat-client) COMPAT=$2; shift 2;;
    --keep) KEEP=1; shift;;
    --mgr) MGR=1; shift;;
    --root) ROOT_NAME=$2; shift 2;;
    --count) COUNT=$2; shift 2;;
    --rootfs) ROOTFS=$2; shift 2;;
    *) echo "dev-cluster: unknown option $1" >&2; exit 2;;
  esac
done
mkdir -p "$(dirname "$DIR")"
DIR=$(cd "$(dirname "$DIR")" && pwd)/$(basename "$DIR")
CONF=$DIR/ceph.conf

# A cluster of another Ceph release (scripts/ceph-rootfs.sh) runs this script, and so its
# daemons and CLI, inside that root filesystem, with the repository and the state directory
# bind-mounted at the same paths: the conf, keyrings and sockets it writes work from outside
# too. `up --rootfs` records the root in the state directory; later commands find it there.
if [ -z "${RBDKIT_IN_ROOTFS:-}" ]; then
  [ -z "$ROOTFS" ] && [ -f "$DIR.rootfs" ] && ROOTFS=$(cat "$DIR.rootfs")
  if [ -n "$ROOTFS" ]; then
    [ -f "$ROOTFS/.rbdkit-ready" ] || { echo "dev-cluster: $ROOTFS is not a root from scripts/ceph-rootfs.sh up" >&2; exit 1; }
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    bind() { mountpoint -q "$ROOTFS$1" || { $SUDO mkdir -p "$ROOTFS$1" && $SUDO mount --bind "$1" "$ROOTFS$1"; }; }
    mountpoint -q "$ROOTFS/proc" || $SUDO mount -t proc proc "$ROOTFS/proc"
    bind /dev
    bind "$ROOT"
    case $(dirname "$DIR")/ in "$ROOT"/*) ;; *) bind "$(dirname "$DIR")";; esac
    [ "$cmd" = up ] && echo "$ROOTFS" > "$DIR.rootfs"
    [ "$cmd" = down ] && [ "$KEEP" = 0 ] && rm -f "$DIR.rootfs"
    exec $SUDO chroot "$ROOTFS" env RBDKIT_IN_ROOTFS=1 bash "$ROOT/scripts/dev-cluster.sh" "$cmd" "${ARGS[@]}"
  fi
fi
if [ "$MON_PORT" = 3300 ]; then V1_PORT=6789; else V1_PORT=$((MON_PORT + 1000)); fi
T=30
c() { timeout "$T" ceph -c "$CONF" --connect-timeout 20 "$@"; }

log_tail() { for f in "$DIR"/log/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }; done; }
die() { echo "dev-cluster: $*" >&2; log_tail; exit 1; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
running() { pid_alive "$DIR/run/mon.a.pid"; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2; shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || die "timed out after ${secs}s waiting for $what"
    sleep 0.2
  done
}

osd_up() { c osd stat -f json | grep -q '"num_up_osds":[1-9]'; }

# Tentacle (20.x) makes AES-256 (krb5) cephx keys by default, which pacific's librados and CLI,
# the host's client, cannot parse: the keys this script makes are AES-128 wherever ceph-authtool
# can choose, and that monitor is told to accept them.
KEY_TYPE=()
INSECURE_KEY=""
case $(ceph-authtool --help 2>&1 || true) in *--key-type*)
  KEY_TYPE=(--key-type=aes)
  INSECURE_KEY=$'mon auth allow insecure key = true\nmon auth emergency allowed ciphers = aes, aes256k';;
esac

write_conf() {
  local fsid=$1
  cat > "$CONF" <<C
[global]
fsid = $fsid
mon_host = [v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$V1_PORT]
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
keyring = $DIR/\$cluster.\$name.keyring
run dir = $DIR/run
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd pool default pg autoscale mode = off
mon data avail warn = 2
mon data avail crit = 1
paxos propose interval = 0.1
$INSECURE_KEY
[client]
log file = /dev/null
[mon]
admin socket = $DIR/run/\$name.asok
mon data = $DIR/data/mon.\$id
keyring = $DIR/data/mon.\$id/keyring
[mgr]
admin socket = $DIR/run/\$name.asok
mgr data = $DIR/data/mgr.\$id
mgr module path = $DIR/data/mgr-modules
[osd]
admin socket = $DIR/run/\$name.asok
osd data = $DIR/data/osd.\$id
osd objectstore = bluestore
bluestore block path = $DIR/data/\$cluster-\$name.block
bluestore block create = true
bluestore block size = $OSD_SIZE
bluestore block db create = false
bluestore block wal create = false
bluestore cache autotune = false
bluestore cache size = 128M
osd memory target = 1G
bdev aio poll ms = 20
bluestore fsck on mkfs = false
C
}

# start_osd LOCATION: creates, registers and starts one more OSD; prints nothing, sets OSD_ID.
# LOCATION is a CRUSH location (`root=NAME host=NAME-host`), empty for the default root.
start_osd() {
  local location=$1 uuid key id
  uuid=$(uuidgen); key=$(ceph-authtool --gen-print-key "${KEY_TYPE[@]}")
  umask 077
  printf '{"cephx_secret": "%s"}' "$key" > "$DIR/osd-new.json"
  id=$(c osd new "$uuid" -i "$DIR/osd-new.json") || die "ceph osd new failed"
  rm -f "$DIR/osd-new.json"
  mkdir -p "$DIR/data/osd.$id"
  printf '[osd.%s]\n\tkey = %s\n' "$id" "$key" > "$DIR/ceph.osd.$id.keyring"
  cp "$DIR/ceph.osd.$id.keyring" "$DIR/data/osd.$id/keyring"
  umask 022
  local loc=()
  [ -n "$location" ] && loc=(--crush-location "$location")
  ceph-osd -c "$CONF" --mkfs --osd-uuid "$uuid" -i "$id" >"$DIR/log/mkfs-osd.$id.out" 2>&1 \
    || die "ceph-osd --mkfs failed: $(tail -3 "$DIR/log/mkfs-osd.$id.out")"
  ceph-osd -c "$CONF" -i "$id" "${loc[@]}" >/dev/null 2>&1 || die "ceph-osd.$id did not start"
  OSD_ID=$id
}

up() {
  if running; then
    if osd_up; then echo "dev-cluster: already running ($CONF)"; return 0; fi
    die "monitor runs but no OSD is up; run '$0 down --dir $DIR' and try again"
  fi
  command -v ceph-mon >/dev/null || die "ceph-mon not found: run scripts/install-deps.sh"
  local t0=$SECONDS
  rm -rf "$DIR"; mkdir -p "$DIR/data" "$DIR/run" "$DIR/log"
  chmod 700 "$DIR"
  local fsid; fsid=$(uuidgen)
  write_conf "$fsid"
  ceph-authtool --create-keyring "$DIR/ceph.mon..keyring" --gen-key "${KEY_TYPE[@]}" -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool --create-keyring "$DIR/ceph.client.admin.keyring" --gen-key "${KEY_TYPE[@]}" -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
  cat "$DIR/ceph.client.admin.keyring" >> "$DIR/ceph.mon..keyring"
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$V1_PORT]" "$DIR/monmap" >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/ceph.mon..keyring" >"$DIR/log/mkfs-mon.out" 2>&1 \
    || die "ceph-mon --mkfs failed: $(tail -3 "$DIR/log/mkfs-mon.out")"
  ceph-mon -c "$CONF" -i a || die "ceph-mon did not start"
  wait_for 30 "the monitor" c mon stat

  start_osd ""
  wait_for 60 "the OSD to come up" osd_up

  if [ "$COMPAT" != luminous ]; then
    c osd set-require-min-compat-client "$COMPAT" --yes-i-really-mean-it >/dev/null 2>&1 \
      || die "set-require-min-compat-client $COMPAT failed"
  fi
  for p in images volumes vms backups; do
    c osd pool create "$p" 8 8 replicated >/dev/null 2>&1 || die "pool create $p failed"
    timeout "$T" rbd -c "$CONF" pool init "$p" || die "rbd pool init $p failed"
  done
  c health mute MGR_DOWN --sticky >/dev/null 2>&1 || true
  c auth get-or-create client.glance mon 'profile rbd' osd 'profile rbd pool=images' \
    -o "$DIR/ceph.client.glance.keyring" >/dev/null
  c auth get-or-create client.cinder mon 'profile rbd' \
    osd 'profile rbd pool=volumes, profile rbd pool=vms, profile rbd-read-only pool=images' \
    -o "$DIR/ceph.client.cinder.keyring" >/dev/null
  chmod 600 "$DIR"/*.keyring
  # Listing a pool blocks until its PGs are active: the readiness check.
  for p in images volumes vms backups; do
    timeout 60 rados -c "$CONF" -p "$p" ls >/dev/null || die "pool $p did not become active"
  done
  echo "dev-cluster: up in $((SECONDS - t0)) s (min compat client $COMPAT) — export CEPH_CONF=$CONF"
  if [ "$MGR" = 1 ]; then mgr; fi
}

# The autoscaler answers only once the mgr is active and has its first maps and stats: that
# command, not the process, is the readiness check.
autoscale_ready() { c osd pool autoscale-status -f json | grep -q pg_num_final; }

mgr() {
  running || die "no cluster runs in $DIR: run '$0 up --dir $DIR' first"
  if pid_alive "$DIR/run/mgr.x.pid"; then
    wait_for 120 "the mgr's pg_autoscaler" autoscale_ready
    echo "dev-cluster: mgr already running"; return 0
  fi
  command -v ceph-mgr >/dev/null || die "ceph-mgr not found: run scripts/install-deps.sh"
  local t0=$SECONDS
  mkdir -p "$DIR/data/mgr.x"
  # ceph-mgr imports every module it finds (~14 s of Python on two cores for Debian's 27): give it a
  # directory with only the pg_autoscaler and the helpers it imports. The other always-on modules
  # are missing on purpose (devicehealth would create a pool of its own, and no test wants it):
  # the mgr reports them as failed, a health error that is muted below.
  local mods=$DIR/data/mgr-modules src=/usr/share/ceph/mgr
  mkdir -p "$mods"
  for m in mgr_module.py mgr_util.py ceph_module.py object_format.py pg_autoscaler progress; do
    [ -e "$src/$m" ] && ln -sfn "$src/$m" "$mods/$m"
  done
  # Reef's mgr_util imports bcrypt (for the dashboard's passwords). Debian's bcrypt is a PyO3
  # extension, which refuses to load in the mgr's subinterpreters (PyO3 issue 576), and then
  # every module fails, pg_autoscaler too. Neither module here hashes a password: a stand-in
  # that fails if called lets them load. Ceph's own code is used as shipped.
  if grep -q '^import bcrypt' "$src/mgr_util.py" 2>/dev/null \
     && compgen -G '/usr/lib/python3/dist-packages/bcrypt/_bcrypt*.so' >/dev/null; then
    cat > "$mods/bcrypt.py" <<'PY'
"""Stand-in for bcrypt in rbdkit's dev-cluster mgr (see scripts/dev-cluster.sh)."""
def _unavailable(*args, **kwargs):
    raise RuntimeError("bcrypt is not available in the rbdkit dev cluster's mgr")
hashpw = gensalt = checkpw = kdf = _unavailable
PY
  fi
  c auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' \
    -o "$DIR/data/mgr.x/keyring" >/dev/null || die "mgr keyring failed"
  chmod 600 "$DIR/data/mgr.x/keyring"
  ceph-mgr -c "$CONF" -i x --keyring "$DIR/data/mgr.x/keyring" >/dev/null 2>&1 || die "ceph-mgr did not start"
  wait_for 120 "the mgr's pg_autoscaler" autoscale_ready
  c health mute MGR_MODULE_ERROR --sticky >/dev/null 2>&1 || true
  echo "dev-cluster: mgr up in $((SECONDS - t0)) s"
}

# OSDs up under one CRUSH root (from `ceph osd tree`).
osds_up_in_root() { # osds_up_in_root ROOT
  c osd tree -f json | python3 -c '
import json, sys
t = json.load(sys.stdin); root = sys.argv[1]
nodes = {n["id"]: n for n in t["nodes"]}
def leaves(n):
    if n["type"] == "osd":
        return [n]
    return [l for c in n.get("children", []) for l in leaves(nodes[c])]
r = [n for n in t["nodes"] if n["type"] == "root" and n["name"] == root]
print(sum(1 for o in (leaves(r[0]) if r else []) if o.get("status") == "up"))' "$1"
}

root_complete() { [ "$(osds_up_in_root "$ROOT_NAME")" -ge "$COUNT" ]; }

# Adds OSDs under a CRUSH root of their own, so the pools of the default root (one OSD) keep
# their placement: an erasure-coded pool (k+m OSDs) or a second root for the pg tests lives there.
osds() {
  running || die "no cluster runs in $DIR: run '$0 up --dir $DIR' first"
  [ -n "$ROOT_NAME" ] || die "osds needs --root NAME"
  local have want=$COUNT t0=$SECONDS
  have=$(osds_up_in_root "$ROOT_NAME") || die "ceph osd tree failed"
  if [ "$have" -ge "$want" ]; then
    echo "dev-cluster: root $ROOT_NAME already has $have OSDs up"; return 0
  fi
  c osd crush add-bucket "$ROOT_NAME" root >/dev/null 2>&1 || true
  local i
  for ((i = have; i < want; i++)); do
    start_osd "root=$ROOT_NAME host=$ROOT_NAME-$i"
  done
  wait_for 90 "$want OSDs up under root $ROOT_NAME" root_complete
  echo "dev-cluster: root $ROOT_NAME has $want OSDs up ($((SECONDS - t0)) s)"
}

stop_pidfile() { # stop_pidfile FILE GRACE_SECONDS
  local f=$1 grace=$2 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    local end=$((SECONDS + grace))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

down() {
  # OSDs before the monitor: an OSD waits for a dead monitor.
  stop_pidfile "$DIR/run/mgr.x.pid" 10
  for f in "$DIR"/run/osd.*.pid; do [ -e "$f" ] && stop_pidfile "$f" 10; done
  stop_pidfile "$DIR/run/mon.a.pid" 10
  if [ "$KEEP" = 0 ]; then rm -rf "$DIR"; fi
  echo "dev-cluster: down ($DIR)"
}

status() {
  if running; then
    echo "dev-cluster: running ($CONF)"
    c -s || true
  else
    echo "dev-cluster: not running ($DIR)"
    return 1
  fi
}

case $cmd in
  up) up;;
  down) down;;
  status) status;;
  env) echo "export CEPH_CONF=$CONF";;
  mgr) mgr;;
  osds) osds;;
  osds-up) osds_up_in_root "$ROOT_NAME";;
  *) echo "usage: $0 up|down|status|env|mgr|osds [--dir DIR] [--mon-port PORT] [--osd-size SIZE] [--min-compat-client luminous|mimic] [--mgr] [--keep] [--root NAME] [--count N] [--rootfs DIR]" >&2; exit 2;;
esac
