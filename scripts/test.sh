#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs the system packages, builds, starts three real
# Ceph clusters (clone v1: require-min-compat-client luminous; clone v2: mimic; and a reef one
# from Debian 13's packages in a root filesystem of its own, scripts/ceph-rootfs.sh), the NFS
# server and the GlusterFS server (scripts/gluster-server.sh), runs
# `cargo test --workspace --release`, and stops everything it started.
# Extra arguments go to cargo test, e.g. `scripts/test.sh -- clone` or `scripts/test.sh --test clone_cli`.
# Ports (env): RBDKIT_TEST_MON_PORT (default 3320), RBDKIT_TEST_MON_PORT_V2 (default 3340),
# RBDKIT_TEST_MON_PORT_REEF (default 3350).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
STATE=${RBDKIT_TEST_STATE:-$ROOT/.state/test}
PORT1=${RBDKIT_TEST_MON_PORT:-3320}
PORT2=${RBDKIT_TEST_MON_PORT_V2:-3340}
PORT_REEF=${RBDKIT_TEST_MON_PORT_REEF:-3350}
t_start=$SECONDS
phase() { printf '\n== %s (%ds elapsed)\n' "$*" $((SECONDS - t_start)); }

phase "system packages"
bash scripts/install-deps.sh
command -v cargo >/dev/null || { echo "test.sh: cargo not found; install a Rust toolchain (rustup)" >&2; exit 1; }

phase "build (release, tests included)"
cargo test --workspace --release --no-run --quiet

started=()
stop_all() {
  local rc=$?
  phase "stopping what the tests started"
  for s in "${started[@]}"; do
    case $s in
      nfs) bash scripts/nfs-server.sh down >/dev/null 2>&1 || true;;
      gluster) bash scripts/gluster-server.sh down >/dev/null 2>&1 || true;;
      rootfs) ;; # unmounted below, after the cluster that runs from it
      *) bash scripts/dev-cluster.sh down --dir "$s" >/dev/null 2>&1 || true;;
    esac
  done
  case " ${started[*]} " in *" rootfs "*) bash scripts/ceph-rootfs.sh umount || true;; esac
  exit $rc
}
trap stop_all EXIT
trap 'exit 130' INT TERM

phase "Ceph cluster (clone v1) on port $PORT1 and cluster (clone v2) on port $PORT2"
started+=("$STATE/cluster")
bash scripts/dev-cluster.sh up --dir "$STATE/cluster" --mon-port "$PORT1"
started+=("$STATE/cluster-v2")
bash scripts/dev-cluster.sh up --dir "$STATE/cluster-v2" --mon-port "$PORT2" --min-compat-client mimic
export CEPH_CONF=$STATE/cluster/ceph.conf
export RBDKIT_CLUSTER_DIR=$STATE/cluster
export RBDKIT_CEPH_CONF_V2=$STATE/cluster-v2/ceph.conf

phase "Ceph reef cluster on port $PORT_REEF (Debian 13's Ceph 18.2.7, from its own root filesystem)"
ROOTFS=$(bash scripts/ceph-rootfs.sh up)
started+=(rootfs "$STATE/cluster-reef")
bash scripts/dev-cluster.sh up --dir "$STATE/cluster-reef" --mon-port "$PORT_REEF" --rootfs "$ROOTFS"
export RBDKIT_CEPH_CONF_REEF=$STATE/cluster-reef/ceph.conf

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

phase "cargo test --workspace --release $*"
set +e
cargo test --workspace --release --no-fail-fast "$@"
rc=$?
set -e
phase "tests finished with status $rc"
exit $rc
