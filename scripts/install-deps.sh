#!/usr/bin/env bash
# Installs the system packages rbdkit needs to build and to run its tests: Ceph (mon, osd, CLI,
# librados/librbd headers; ceph-mgr for the pg tests' pg_autoscaler), libclang for bindgen, make
# (the jemalloc crate builds jemalloc from source), fio,
# qemu-utils, NFS-Ganesha and rpcbind, debootstrap (the root filesystems of other Ceph releases,
# scripts/ceph-rootfs.sh), GlusterFS (glusterd + libgfapi headers), tgt + libiscsi (an iSCSI
# target and a userspace initiator) and lvm2 (scripts/lvm-iscsi.sh tries a volume group first).
# Idempotent and non-interactive; does nothing (and no apt-get update) when all are present.
set -euo pipefail
PKGS=(ceph-mon ceph-osd ceph-mgr ceph-common librbd-dev librados-dev libclang-dev clang make pkg-config fio
      qemu-utils nfs-ganesha nfs-ganesha-vfs rpcbind e2fsprogs uuid-runtime procps iproute2
      debootstrap glusterfs-server libglusterfs-dev tgt libiscsi-dev libiscsi-bin lvm2)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
