#!/usr/bin/env bash
# NFS-Ganesha (FSAL_VFS) on 127.0.0.1 serving a local directory over NFSv3, without systemd.
# Usage: scripts/nfs-server.sh up|down|status|url|dir
#   state directory: $RBDKIT_NFS_STATE (default <repo>/.state/nfs); exported dir: <state>/export
#   ports: NFS $RBDKIT_NFS_PORT (default 2049), MOUNT $RBDKIT_NFS_MOUNT_PORT (default 20048)
# `url` prints nfs://127.0.0.1:PORT/EXPORT (append /FILE for a bench target); `dir` the directory.
# rpcbind is started only if nothing answers on port 111, and stopped only if we started it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${RBDKIT_NFS_STATE:-$ROOT/.state/nfs}
NFS_PORT=${RBDKIT_NFS_PORT:-2049}
MNT_PORT=${RBDKIT_NFS_MOUNT_PORT:-20048}
EXPORT=$STATE/export
PSEUDO=/rbdkit
cmd=${1:-}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

up() {
  mkdir -p "$STATE" "$EXPORT"
  if pid_alive "$STATE/ganesha.pid" && port_open "$NFS_PORT"; then
    echo "nfs-server: already running ($(url))"; return 0
  fi
  for p in "$NFS_PORT" "$MNT_PORT"; do
    if port_open "$p"; then
      echo "nfs-server: port $p is already in use (another NFS server?); stop it or set RBDKIT_NFS_PORT / RBDKIT_NFS_MOUNT_PORT" >&2
      exit 1
    fi
  done
  command -v ganesha.nfsd >/dev/null || { echo "nfs-server: ganesha.nfsd not found: run scripts/install-deps.sh" >&2; exit 1; }
  if ! port_open 111; then
    rpcbind -w 2>/dev/null || rpcbind
    for _ in $(seq 50); do port_open 111 && break; sleep 0.1; done
    port_open 111 || { echo "nfs-server: rpcbind did not start" >&2; exit 1; }
    pgrep -x rpcbind > "$STATE/rpcbind.pid" || true
  fi
  cat > "$STATE/ganesha.conf" <<C
NFS_CORE_PARAM {
  Bind_addr = 127.0.0.1;
  NFS_Port = $NFS_PORT;
  MNT_Port = $MNT_PORT;
  Protocols = 3, 4;
  Mount_Path_Pseudo = true;
  Enable_NLM = false;
  Enable_RQUOTA = false;
  Enable_UDP = false;
}
NFS_KRB5 { Active_krb5 = false; }
NFSV4 { Graceless = true; }
EXPORT {
  Export_Id = 77;
  Path = "$EXPORT";
  Pseudo = "$PSEUDO";
  Access_Type = RW;
  Squash = No_Root_Squash;
  SecType = sys;
  Transports = TCP;
  Protocols = 3, 4;
  Attr_Expiration_Time = 0;
  FSAL { Name = VFS; }
}
C
  rm -f "$STATE/ganesha.log"
  setsid ganesha.nfsd -F -f "$STATE/ganesha.conf" -L "$STATE/ganesha.log" -p "$STATE/ganesha.pid" -N NIV_EVENT \
    </dev/null >/dev/null 2>&1 &
  echo $! > "$STATE/ganesha.pid"
  for _ in $(seq 150); do
    if grep -q "NFS SERVER INITIALIZED" "$STATE/ganesha.log" 2>/dev/null && port_open "$NFS_PORT"; then
      echo "nfs-server: up ($(url), exporting $EXPORT)"; return 0
    fi
    pid_alive "$STATE/ganesha.pid" || break
    sleep 0.1
  done
  echo "nfs-server: ganesha did not come up; log:" >&2; tail -n 20 "$STATE/ganesha.log" >&2 || true
  exit 1
}

down() {
  if pid_alive "$STATE/ganesha.pid"; then
    local pid; pid=$(cat "$STATE/ganesha.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    # FSAL_VFS writes go straight to the exported filesystem: SIGKILL loses nothing.
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$STATE/ganesha.pid"
  if [ -f "$STATE/rpcbind.pid" ]; then kill "$(cat "$STATE/rpcbind.pid")" 2>/dev/null || true; rm -f "$STATE/rpcbind.pid"; fi
  echo "nfs-server: down"
}

url() { echo "nfs://127.0.0.1:$NFS_PORT$PSEUDO"; }

case $cmd in
  up) up;;
  down) down;;
  status) if pid_alive "$STATE/ganesha.pid"; then echo "nfs-server: running ($(url))"; else echo "nfs-server: not running"; exit 1; fi;;
  url) url;;
  dir) echo "$EXPORT";;
  *) echo "usage: $0 up|down|status|url|dir" >&2; exit 2;;
esac
