#!/usr/bin/env bash
# A Cinder-LVM-style iSCSI volume on loopback, without systemd: a logical volume
# volume-<uuid> in a volume group on a loop device, exported by tgtd as
# iqn.2010-10.org.openstack:volume-<uuid> LUN 1, as Cinder's LVM driver (target_helper = tgtadm)
# exports its volumes. Usage: scripts/lvm-iscsi.sh up|down|status|url|backing [1|2]
#   state directory: $RBDKIT_ISCSI_STATE (default <repo>/.state/iscsi): tgtd's log and pid,
#   the loop device's file or the LUN's backing file, and what `down` must undo;
#   port: $RBDKIT_ISCSI_PORT (default 3260), also tgtd's control port (tgtadm -C) so that two
#   instances on two ports do not share a control socket; size: $RBDKIT_ISCSI_SIZE (default 1G).
# Where the kernel has no device-mapper (lvcreate fails: "Required device-mapper target(s) not
# detected"), no logical volume can exist: the LUN is then backed by a sparse file instead, and
# `up` says so. The LUN is thin-provisioned (tgt's thin_provisioning=1), so UNMAP punches holes
# in a file backing store.
# LUN 2 of the same target is a 64 MiB LUN without thin provisioning (no UNMAP), for tests.
# `url` prints iscsi://127.0.0.1:PORT/IQN/1 (a bench target as it is); `backing` the LUN's
# backing store (a file to compare data against, or /dev/VG/LV; `backing 2`: LUN 2's file).
# `down` deletes the target, ends tgtd, removes the LV, VG, PV and loop device if it made them,
# and the state directory.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${RBDKIT_ISCSI_STATE:-$ROOT/.state/iscsi}
PORT=${RBDKIT_ISCSI_PORT:-3260}
SIZE=${RBDKIT_ISCSI_SIZE:-1G}
CTL=$PORT
TID=1
cmd=${1:-}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
say() { echo "lvm-iscsi: $*"; }
die() { echo "lvm-iscsi: $*" >&2; exit 1; }
adm() { timeout 30 tgtadm -C "$CTL" --lld iscsi "$@"; }
state() { cat "$STATE/$1" 2>/dev/null || true; }

# Who listens on the port, for the refusal message.
holder() { ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\("[^"]*"\),pid=\([0-9]*\).*/\1 (pid \2)/p' | head -n 1; }

# Tries the LVM layout; on success prints /dev/VG/LV, otherwise undoes what it made, leaves the
# failing line in $STATE/lvm-error and returns 1.
make_lv() {
  local name=$1 vg=$2 dev out
  truncate -s "$SIZE" "$STATE/pv.img"
  # Room for the PV and VG metadata on top of the LV.
  truncate -s +16M "$STATE/pv.img"
  if ! dev=$(losetup -f --show "$STATE/pv.img" 2>&1); then
    echo "losetup failed: $dev" > "$STATE/lvm-error"
    rm -f "$STATE/pv.img"; return 1
  fi
  echo "$dev" > "$STATE/loop"
  local step
  for step in "pvcreate -q $dev" "vgcreate -q $vg $dev" "lvcreate -q -y -n $name -L $SIZE $vg"; do
    if ! out=$($step 2>&1); then
      # The line that says why (lvcreate adds a usage hint after it; LVM warns of leaked fds).
      out=$(echo "$out" | grep -v "leaked on" | sed 's/^ *//')
      { echo "$out" | grep -m 1 "not detected" || echo "$out" | head -n 1; } \
        | sed "s|^|${step%% *} failed after $(done_steps "$step"): |" > "$STATE/lvm-error"
      undo_lvm
      return 1
    fi
  done
  echo "$vg" > "$STATE/vg"
  echo "/dev/$vg/$name"
}

# "losetup, pvcreate and vgcreate worked" for the step that failed.
done_steps() {
  case $1 in
    pvcreate*) echo "losetup worked";;
    vgcreate*) echo "losetup and pvcreate worked";;
    *) echo "losetup, pvcreate and vgcreate worked";;
  esac
}

undo_lvm() {
  local vg loop
  vg=$(state vg); [ -n "$vg" ] || vg=$(state vg-tried)
  loop=$(state loop)
  if [ -n "$vg" ]; then
    lvremove -q -f "$vg" >/dev/null 2>&1 || true
    vgremove -q -f "$vg" >/dev/null 2>&1 || true
  fi
  if [ -n "$loop" ]; then
    pvremove -q -f "$loop" >/dev/null 2>&1 || true
    # Only the loop device we attached, and only while it still shows our file.
    losetup "$loop" 2>/dev/null | grep -qF "$STATE/pv.img" && losetup -d "$loop" 2>/dev/null || true
  fi
  rm -f "$STATE/vg" "$STATE/vg-tried" "$STATE/loop" "$STATE/pv.img"
}

up() {
  if pid_alive "$STATE/tgtd.pid" && port_open "$PORT" && [ -f "$STATE/iqn" ]; then
    say "already running ($(url), backing $(state backing))"; return 0
  fi
  if port_open "$PORT"; then
    die "port $PORT is in use by $(holder "$PORT" || true): another tgtd (or iSCSI target) holds it, and only one can; stop it, or set RBDKIT_ISCSI_PORT to another port"
  fi
  command -v tgtd >/dev/null || die "tgtd not found: run scripts/install-deps.sh (Debian package tgt)"
  # A previous run that died half-way: undo what it left before starting again.
  [ -d "$STATE" ] && down >/dev/null
  mkdir -p "$STATE"
  local uuid name iqn vg backing
  uuid=$(cat /proc/sys/kernel/random/uuid)
  name=volume-$uuid
  iqn=iqn.2010-10.org.openstack:$name
  # Cinder's group is cinder-volumes; ours names the port so that two instances differ.
  vg=rbdkit-iscsi-$PORT
  echo "$vg" > "$STATE/vg-tried"
  if backing=$(make_lv "$name" "$vg"); then
    say "logical volume $backing ($SIZE) in volume group $vg on $(state loop)"
    echo lvm > "$STATE/mode"
  else
    backing=$STATE/$name.img
    truncate -s "$SIZE" "$backing"
    say "LVM is not possible here ($(state lvm-error)): without device-mapper in the kernel no logical volume can be activated, so the LUN is backed by the sparse file $backing ($SIZE) instead, which holds what the LV would"
    echo file > "$STATE/mode"
  fi
  rm -f "$STATE/vg-tried"
  echo "$backing" > "$STATE/backing"
  setsid tgtd -f -C "$CTL" --iscsi "portal=127.0.0.1:$PORT" </dev/null >"$STATE/tgtd.log" 2>&1 &
  echo $! > "$STATE/tgtd.pid"
  for _ in $(seq 100); do
    port_open "$PORT" && adm --mode target --op show >/dev/null 2>&1 && break
    pid_alive "$STATE/tgtd.pid" || break
    sleep 0.1
  done
  adm --mode target --op show >/dev/null 2>&1 || { tail -n 20 "$STATE/tgtd.log" >&2; down >/dev/null; die "tgtd did not start; its log is above"; }
  adm --mode target --op new --tid "$TID" --targetname "$iqn"
  adm --mode logicalunit --op new --tid "$TID" --lun 1 --backing-store "$backing"
  if adm --mode logicalunit --op update --tid "$TID" --lun 1 --params thin_provisioning=1 2>"$STATE/thin-error"; then
    say "LUN 1 thin-provisioned (UNMAP punches holes in the backing store)"
  else
    say "thin provisioning refused ($(head -n 1 "$STATE/thin-error")): the LUN has no UNMAP, so bench --phases will refuse it"
  fi
  # LUN 2: a small LUN left thick (no UNMAP), for the tests of what bench refuses on one.
  truncate -s 64M "$STATE/thick.img"
  adm --mode logicalunit --op new --tid "$TID" --lun 2 --backing-store "$STATE/thick.img"
  adm --mode target --op bind --tid "$TID" --initiator-address ALL
  echo "$iqn" > "$STATE/iqn"
  say "up ($(url), backing $backing)"
}

down() {
  if pid_alive "$STATE/tgtd.pid"; then
    adm --mode target --op delete --force --tid "$TID" >/dev/null 2>&1 || true
    local p; p=$(cat "$STATE/tgtd.pid")
    # tgtd ignores SIGTERM; it exits when told to through its control socket.
    adm --mode system --op delete >/dev/null 2>&1 || kill "$p" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  fi
  rm -f "/var/run/tgtd/socket.$CTL" "/var/run/tgtd/socket.$CTL.lock"
  undo_lvm
  rm -rf "$STATE"
  say "down"
}

url() {
  local iqn; iqn=$(state iqn)
  [ -n "$iqn" ] || die "not running (no target in $STATE): run scripts/lvm-iscsi.sh up"
  echo "iscsi://127.0.0.1:$PORT/$iqn/1"
}

case $cmd in
  up) up;;
  down) down;;
  status)
    if pid_alive "$STATE/tgtd.pid" && port_open "$PORT"; then
      say "running ($(url), $(state mode) backing $(state backing))"
    else
      say "not running"; exit 1
    fi;;
  url) url;;
  backing)
    b=$(state backing); [ -n "$b" ] || die "not running: run scripts/lvm-iscsi.sh up"
    case ${2:-1} in 1) echo "$b";; 2) echo "$STATE/thick.img";; *) die "LUNs are 1 and 2";; esac;;
  *) echo "usage: $0 up|down|status|url|backing [1|2]" >&2; exit 2;;
esac
