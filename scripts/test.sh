#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs the system packages, builds, starts four real
# Ceph clusters (clone v1: require-min-compat-client luminous; clone v2: mimic; reef from Debian
# 13's packages and tentacle from Debian unstable's, each in a root filesystem of its own,
# scripts/ceph-rootfs.sh), the NFS server, the GlusterFS server (scripts/gluster-server.sh) and
# an iSCSI target (tgtd, scripts/lvm-iscsi.sh; its port 3260 must be free), runs
# `cargo test --workspace --release`, and stops everything it started.
# Extra arguments go to cargo test, e.g. `scripts/test.sh -- clone` or `scripts/test.sh --test clone_cli`.
# Ports (env): RBDKIT_TEST_MON_PORT (default 3320), RBDKIT_TEST_MON_PORT_V2 (default 3340),
# RBDKIT_TEST_MON_PORT_REEF (default 3350), RBDKIT_TEST_MON_PORT_TENTACLE (default 3360).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
STATE=${RBDKIT_TEST_STATE:-$ROOT/.state/test}
PORT1=${RBDKIT_TEST_MON_PORT:-3320}
PORT2=${RBDKIT_TEST_MON_PORT_V2:-3340}
PORT_REEF=${RBDKIT_TEST_MON_PORT_REEF:-3350}
PORT_TENTACLE=${RBDKIT_TEST_MON_PORT_TENTACLE:-3360}
t_start=$SECONDS
phase() { printf '\n== %s (%ds elapsed)\n' "$*" $((SECONDS - t_start)); }

phase "system packages"
bash scripts/install-deps.sh
command -v cargo >/dev/null || { echo "test.sh: cargo not found; install a Rust toolchain (rustup)" >&2; exit 1; }

started=()
rootfs_pids=()
stop_all() {
  local rc=$? p
  for p in "${rootfs_pids[@]}"; do kill -- -"$p" 2>/dev/null || true; done
  phase "stopping what the tests started"
  for s in "${started[@]}"; do
    case $s in
      nfs) bash scripts/nfs-server.sh down >/dev/null 2>&1 || true;;
      gluster) bash scripts/gluster-server.sh down >/dev/null 2>&1 || true;;
      iscsi) bash scripts/lvm-iscsi.sh down >/dev/null 2>&1 || true;;
      rootfs:*) ;; # unmounted below, after the cluster that runs from it
      *) bash scripts/dev-cluster.sh down --dir "$s" >/dev/null 2>&1 || true;;
    esac
  done
  for s in "${started[@]}"; do
    case $s in rootfs:*) bash scripts/ceph-rootfs.sh umount --suite "${s#rootfs:}" || true;; esac
  done
  exit $rc
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# The root filesystems of the other releases are network- and disk-bound: built (once per
# machine) while cargo builds.
mkdir -p "$STATE"
for suite in trixie sid; do
  setsid bash scripts/ceph-rootfs.sh up --suite "$suite" >"$STATE/rootfs-$suite.out" 2>"$STATE/rootfs-$suite.log" &
  rootfs_pids+=($!)
done
wait_rootfs() { # SUITE INDEX: waits for that root filesystem; sets ROOTFS to its directory
  wait "${rootfs_pids[$2]}" || { cat "$STATE/rootfs-$1.log" >&2; echo "test.sh: the $1 root filesystem failed" >&2; exit 1; }
  cat "$STATE/rootfs-$1.log" >&2
  ROOTFS=$(cat "$STATE/rootfs-$1.out")
}

phase "build (release, tests included)"
cargo test --workspace --release --no-run --quiet

phase "Ceph cluster (clone v1) on port $PORT1 and cluster (clone v2) on port $PORT2"
started+=("$STATE/cluster")
bash scripts/dev-cluster.sh up --dir "$STATE/cluster" --mon-port "$PORT1"
started+=("$STATE/cluster-v2")
bash scripts/dev-cluster.sh up --dir "$STATE/cluster-v2" --mon-port "$PORT2" --min-compat-client mimic
export CEPH_CONF=$STATE/cluster/ceph.conf
export RBDKIT_CLUSTER_DIR=$STATE/cluster
export RBDKIT_CEPH_CONF_V2=$STATE/cluster-v2/ceph.conf

phase "Ceph reef cluster on port $PORT_REEF (Debian 13's Ceph 18.2.7, from its own root filesystem)"
wait_rootfs trixie 0
started+=(rootfs:trixie "$STATE/cluster-reef")
bash scripts/dev-cluster.sh up --dir "$STATE/cluster-reef" --mon-port "$PORT_REEF" --rootfs "$ROOTFS"
export RBDKIT_CEPH_CONF_REEF=$STATE/cluster-reef/ceph.conf

phase "Ceph tentacle cluster on port $PORT_TENTACLE (Debian unstable's Ceph 20.2.x, from its own root filesystem)"
wait_rootfs sid 1
started+=(rootfs:sid "$STATE/cluster-tentacle")
bash scripts/dev-cluster.sh up --dir "$STATE/cluster-tentacle" --mon-port "$PORT_TENTACLE" --rootfs "$ROOTFS"
export RBDKIT_CEPH_CONF_TENTACLE=$STATE/cluster-tentacle/ceph.conf

if [ -f scripts/nfs-server.sh ]; then
  phase "NFS server"
  export RBDKIT_NFS_STATE=$STATE/nfs
  started+=(nfs)
  bash scripts/nfs-server.sh up
  RBDKIT_NFS_URL=$(bash scripts/nfs-server.sh url)
  RBDKIT_NFS_DIR=$(bash scripts/nfs-server.sh dir)
  export RBDKIT_NFS_URL RBDKIT_NFS_DIR
fi

phase "GlusterFS server (glusterd, one-brick volume on loopback)"
export RBDKIT_GLUSTER_STATE=$STATE/gluster
started+=(gluster)
bash scripts/gluster-server.sh up
RBDKIT_GLUSTER_URL=$(bash scripts/gluster-server.sh url)
RBDKIT_GLUSTER_BRICK=$(bash scripts/gluster-server.sh dir)
export RBDKIT_GLUSTER_URL RBDKIT_GLUSTER_BRICK

phase "iSCSI target (tgtd on loopback, a Cinder-LVM-style volume: scripts/lvm-iscsi.sh)"
export RBDKIT_ISCSI_STATE=$STATE/iscsi
started+=(iscsi)
bash scripts/lvm-iscsi.sh up
RBDKIT_ISCSI_URL=$(bash scripts/lvm-iscsi.sh url)
RBDKIT_ISCSI_BACKING=$(bash scripts/lvm-iscsi.sh backing 1)
RBDKIT_ISCSI_THICK_BACKING=$(bash scripts/lvm-iscsi.sh backing 2)
export RBDKIT_ISCSI_URL RBDKIT_ISCSI_BACKING RBDKIT_ISCSI_THICK_BACKING

phase "cargo test --workspace --release $*"
set +e
cargo test --workspace --release --no-fail-fast "$@"
rc=$?
set -e
phase "tests finished with status $rc"
exit $rc
