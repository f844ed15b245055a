#!/usr/bin/env bash
# The main job, end to end, on a throwaway local Ceph cluster (and NFS, GlusterFS and iSCSI servers):
#   1. install what is needed, build rbdkit, start a private cluster (its own dir and ports);
#   2. make a qcow2 cloud image on the spot (ext4 filesystem from /usr/share, zlib-compressed);
#   3. `rbdkit inspect` it (and a hostile qcow2 naming /etc/passwd, which import-raw refuses);
#      `rbdkit import-raw` it into `images` Glance-style (--snap snap --protect), verified; its
#      checksum again from the snapshot (`rbdkit checksum`) and from `rbd export` by Python;
#      the qcow2 once more streamed from a pipe;
#   4. `rbdkit clone` volumes from images/<image>@snap with resize, `rbdkit info` one of them;
#   5. `rbdkit pg plan` for the OpenStack pools and `rbdkit pg check` against the cluster;
#   6. one short `rbdkit bench` run of the four Cinder back ends side by side — RBD, an NFS
#      share, a GlusterFS volume and an LVM-style iSCSI LUN — with one plot;
#   then stop everything it started and remove the cluster.
# Usage: bash scripts/demo.sh   (environment: RBDKIT_DEMO_DIR to keep the output somewhere)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${RBDKIT_DEMO_DIR:-$ROOT/.state/demo}
step() { printf '\n==> %s\n' "$*"; }

step "installing system packages (idempotent)"
bash scripts/install-deps.sh
step "building rbdkit (release)"
cargo build --release --quiet
RBDKIT=${CARGO_TARGET_DIR:-$ROOT/target}/release/rbdkit

rm -rf "$OUT"; mkdir -p "$OUT"
CLUSTER_DIR="$OUT/cluster"
# Not 3260: a test run's tgtd may hold that port.
ISCSI_PORT=${RBDKIT_DEMO_ISCSI_PORT:-3261}
cleanup() {
  [ -x scripts/nfs-server.sh ] && RBDKIT_NFS_STATE="$OUT/nfs" bash scripts/nfs-server.sh down >/dev/null 2>&1 || true
  RBDKIT_GLUSTER_STATE="$OUT/gluster" bash scripts/gluster-server.sh down >/dev/null 2>&1 || true
  RBDKIT_ISCSI_STATE="$OUT/iscsi" RBDKIT_ISCSI_PORT="$ISCSI_PORT" bash scripts/lvm-iscsi.sh down >/dev/null 2>&1 || true
  bash scripts/dev-cluster.sh down --dir "$CLUSTER_DIR" >/dev/null 2>&1 || true
}
trap cleanup EXIT
step "starting a throwaway single-host Ceph cluster in $CLUSTER_DIR"
bash scripts/dev-cluster.sh up --dir "$CLUSTER_DIR" --mon-port "${RBDKIT_DEMO_MON_PORT:-3410}"
eval "$(bash scripts/dev-cluster.sh env --dir "$CLUSTER_DIR")"

step "making a qcow2 cloud image: ext4 from /usr/share, zlib-compressed"
truncate -s 1G "$OUT/disk.raw"
mkfs.ext4 -q -F -d /usr/share "$OUT/disk.raw" >/dev/null
qemu-img convert -c -O qcow2 "$OUT/disk.raw" "$OUT/cloud.qcow2"
rm -f "$OUT/disk.raw"
qemu-img info "$OUT/cloud.qcow2" | grep -E "virtual size|disk size"

step "rbdkit inspect cloud.qcow2 --openstack: what it is, and whether Glance/Nova/Cinder would take it"
"$RBDKIT" inspect "$OUT/cloud.qcow2" --openstack

step "an uploaded qcow2 that names /etc/passwd as its backing file: inspect says unsafe, import-raw refuses it"
qemu-img create -q -f qcow2 -u -b /etc/passwd -F raw "$OUT/evil.qcow2" 1M
if "$RBDKIT" inspect "$OUT/evil.qcow2" | grep -E "^(backing file|safe)|unsafe:"; then :; fi
if "$RBDKIT" import-raw "$OUT/evil.qcow2" images/evil; then
  echo "demo: the hostile image was imported" >&2; exit 1
fi
if rbd info images/evil >/dev/null 2>&1; then
  echo "demo: images/evil exists" >&2; exit 1
fi

step "rbdkit import-raw cloud.qcow2 images/cloud --snap snap --protect --verify"
"$RBDKIT" import-raw "$OUT/cloud.qcow2" images/cloud --snap snap --protect --verify

step "the checksum again: rbdkit checksum images/cloud@snap, then its recipe in Python over rbd export"
ours=$("$RBDKIT" checksum images/cloud@snap); echo "$ours"
# The sha256-tree recipe (the README's, printed by rbdkit): the same root from the raw bytes
# alone, computed by Python's hashlib.
theirs=$(rbd export --no-progress images/cloud - | python3 -c "$("$RBDKIT" checksum --print-recipe)"); echo "$theirs"
[ "$(echo "$ours" | awk '{print $2}')" = "$theirs" ] || { echo "demo: the two checksums differ" >&2; exit 1; }

step "the same qcow2 from a pipe: cat cloud.qcow2 | rbdkit import-raw - images/cloud-piped"
cat "$OUT/cloud.qcow2" | "$RBDKIT" import-raw - images/cloud-piped

step "rbdkit clone images/cloud@snap volumes/volume-{n} --count 5 --size 10G"
"$RBDKIT" clone images/cloud@snap 'volumes/volume-{n}' --count 5 --size 10G

step "rbdkit info volumes/volume-1"
"$RBDKIT" info volumes/volume-1

if "$RBDKIT" pg --help >/dev/null 2>&1 && "$RBDKIT" pg plan --help >/dev/null 2>&1; then
  step "rbdkit pg plan --preset openstack --osds 12"
  "$RBDKIT" pg plan --preset openstack --osds 12
  step "rbdkit pg check --new-pool metrics:512"
  "$RBDKIT" pg check --new-pool metrics:512
fi

step "the four Cinder back ends in one rbdkit bench run: 4k randwrite, iodepth 16, 2 s each"
export RBDKIT_NFS_STATE="$OUT/nfs" RBDKIT_GLUSTER_STATE="$OUT/gluster"
export RBDKIT_ISCSI_STATE="$OUT/iscsi" RBDKIT_ISCSI_PORT="$ISCSI_PORT" RBDKIT_ISCSI_SIZE=1G
bash scripts/nfs-server.sh up
bash scripts/gluster-server.sh up
bash scripts/lvm-iscsi.sh up
# The LUN exists (someone's volume, as in Cinder): --allow-existing lets the run write it; the
# other three targets are created by the run, 1G each, and removed after it.
"$RBDKIT" bench rbd:volumes/bench-demo "$(bash scripts/nfs-server.sh url)/volume-demo" \
  "$(bash scripts/gluster-server.sh url)/volume-demo" "$(bash scripts/lvm-iscsi.sh url)" \
  --size 1G --allow-existing --rw randwrite --bs 4K --iodepth 16 --runtime 2s \
  --plot "$OUT/backends.svg" --json "$OUT/backends.json"
echo "plot: $OUT/backends.svg"
step "done; stopping the throwaway cluster"
