#!/usr/bin/env bash
# Another Ceph release for the dev cluster, from Debian's own packages: a minimal Debian root
# filesystem (debootstrap) with that suite's ceph-mon, ceph-osd and ceph-mgr, whose daemons
# `scripts/dev-cluster.sh up --rootfs DIR` runs under chroot on this machine's kernel and
# loopback. Debian 12 ships only pacific (16.2.15) and download.ceph.com is out of reach here;
# Debian 13 (trixie) ships reef (18.2.7) and Debian unstable (sid) tentacle (20.2.x), so the pg
# tests check rbdkit's reef and tentacle models against real monitors and mgrs of those releases.
#
# Usage: scripts/ceph-rootfs.sh up|path|umount [--suite SUITE] [--dir DIR]
#   up       build DIR once (about 45 s of debootstrap and 100 s of apt on a fresh machine;
#            then nothing), print DIR
#   path     print DIR
#   umount   undo every mount dev-cluster.sh made under DIR (before DIR may be removed: the
#            project's directories are bind-mounted inside it)
#   --suite  Debian suite (default trixie)
#   --dir    where (default /var/tmp/rbdkit-rootfs/SUITE, outside every state directory that
#            scripts remove)
# Debian's packages only; the mirror is the one this machine's apt uses.
set -euo pipefail
cmd=${1:-}
[ -n "$cmd" ] && shift
SUITE=trixie
DIR=
while [ $# -gt 0 ]; do
  case $1 in
    --suite) SUITE=$2; shift 2;;
    --dir) DIR=$2; shift 2;;
    *) echo "ceph-rootfs: unknown option $1" >&2; exit 2;;
  esac
done
DIR=${DIR:-/var/tmp/rbdkit-rootfs/$SUITE}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
die() { echo "ceph-rootfs: $*" >&2; exit 1; }

mirror() {
  local m
  m=$(grep -rhE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
      | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -1 | tr -d ' ' || true)
  echo "${m:-http://deb.debian.org/debian}"
}

up() {
  if [ -f "$DIR/.rbdkit-ready" ]; then echo "$DIR"; return 0; fi
  command -v debootstrap >/dev/null || {
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends debootstrap >/dev/null \
      || die "apt-get install debootstrap failed"
  }
  local t0=$SECONDS
  # A half-built directory from an interrupted run is started again.
  umount_all
  $SUDO rm -rf "$DIR"
  $SUDO mkdir -p "$(dirname "$DIR")"
  $SUDO debootstrap --variant=minbase "$SUITE" "$DIR" "$(mirror)" >"$DIR.debootstrap.log" 2>&1 \
    || die "debootstrap $SUITE failed: $(tail -3 "$DIR.debootstrap.log")"
  # No service starts inside the root (the dev cluster runs the daemons itself): newer
  # suites' maintainer scripts otherwise fail on systemctl, and cryptsetup-bin's without /proc.
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$DIR/usr/sbin/policy-rc.d" >/dev/null
  $SUDO chmod 755 "$DIR/usr/sbin/policy-rc.d"
  $SUDO mount -t proc proc "$DIR/proc"
  local rc=0
  $SUDO chroot "$DIR" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    ceph-mon ceph-osd ceph-mgr ceph-common uuid-runtime procps python3 >"$DIR.apt.log" 2>&1 || rc=$?
  $SUDO umount "$DIR/proc"
  [ $rc -eq 0 ] || die "installing ceph in the $SUITE root failed: $(grep -m1 'error processing' "$DIR.apt.log" || tail -1 "$DIR.apt.log")"
  $SUDO touch "$DIR/.rbdkit-ready"
  echo "ceph-rootfs: $SUITE with $($SUDO chroot "$DIR" ceph --version | cut -d' ' -f1-3,5) in $((SECONDS - t0)) s" >&2
  echo "$DIR"
}

# Everything mounted under DIR, deepest first.
umount_all() {
  [ -d "$DIR" ] || return 0
  local m pass
  # A path mounted twice (two clusters' binds of one directory) needs one umount per mount.
  for pass in 1 2 3 4; do
    m=$(awk -v d="$DIR/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r)
    [ -n "$m" ] || return 0
    while read -r m; do $SUDO umount -l "$m" 2>/dev/null || true; done <<<"$m"
  done
  if awk -v d="$DIR/" 'index($2, d) == 1' /proc/mounts | grep -q .; then
    die "mounts under $DIR remain; see /proc/mounts before removing it"
  fi
}

case $cmd in
  up) up;;
  path) echo "$DIR";;
  umount) umount_all;;
  *) echo "usage: $0 up|path|umount [--suite SUITE] [--dir DIR]" >&2; exit 2;;
esac
