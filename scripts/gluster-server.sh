#!/usr/bin/env bash
# GlusterFS on loopback without systemd: glusterd and a one-brick volume, for the gluster://
# bench target, sink and source. Usage: scripts/gluster-server.sh up|down|status|url|dir
#   state directory: $RBDKIT_GLUSTER_STATE (default <repo>/.state/gluster): glusterd's working
#   directory, its volfile, logs, and the brick (<state>/brick);
#   volume: $RBDKIT_GLUSTER_VOLUME (default rbdkit).
# `url` prints gluster://127.0.0.1/VOLUME (append /FILE for a target); `dir` the brick directory,
# where the volume's files lie as plain files.
# glusterd is machine-wide (TCP port 24007, /run/glusterd.socket): only one runs at a time, so
# `up` refuses when another glusterd answers. `down` stops the volume, deletes it, ends glusterd
# and every brick process (glusterfsd) of the volume, and removes the state directory.
# The volume allows clients from unprivileged ports (server.allow-insecure, and
# rpc-auth-allow-insecure in glusterd's volfile), and its root belongs to
# $RBDKIT_GLUSTER_OWNER (uid[:gid], default the caller: $SUDO_UID or the current user), so a
# non-root gfapi client can create files in it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${RBDKIT_GLUSTER_STATE:-$ROOT/.state/gluster}
VOL=${RBDKIT_GLUSTER_VOLUME:-rbdkit}
OWNER=${RBDKIT_GLUSTER_OWNER:-${SUDO_UID:-$(id -u)}:${SUDO_GID:-$(id -g)}}
WORK=$STATE/glusterd
BRICK=$STATE/brick
cmd=${1:-}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
say() { echo "gluster-server: $*"; }
die() { echo "gluster-server: $*" >&2; exit 1; }
# The CLI with a limit: a glusterd that stopped answering fails the script instead of hanging it.
g() { timeout 60 gluster --mode=script "$@"; }

# The brick's host name: this CLI version refuses 127.0.0.1 in a brick (it prints its usage
# text), so the machine's name, which must resolve to a loopback address.
brick_host() {
  local h; h=$(hostname)
  case $(getent hosts "$h" | awk '{print $1; exit}') in
    127.*|::1) echo "$h";;
    *) echo localhost;;
  esac
}

# True when the brick process of VOL is online, from the XML status: the plain table wraps a
# long brick path over two lines, which a line-based check misreads.
brick_online() {
  g --xml volume status "$VOL" 2>/dev/null | tr -d ' \n' | grep -q '<status>1</status>'
}

up() {
  if pid_alive "$STATE/glusterd.pid" && brick_online; then
    say "already running ($(url), brick $BRICK)"; return 0
  fi
  if port_open 24007; then
    die "port 24007 is in use: another glusterd runs on this machine (only one can); stop it first"
  fi
  command -v glusterd >/dev/null || die "glusterd not found: run scripts/install-deps.sh"
  mkdir -p "$WORK" "$BRICK" "$STATE/log"
  # glusterd's own volfile, with its state under ours instead of /var/lib/glusterd.
  cat > "$STATE/glusterd.vol" <<V
volume management
    type mgmt/glusterd
    option working-directory $WORK
    option transport-type socket
    option transport.socket.listen-port 24007
    option transport.socket.bind-address 127.0.0.1
    option transport.socket.read-fail-log off
    option ping-timeout 0
    option event-threads 1
    option rpc-auth-allow-insecure on
    option max-port 60999
end-volume
V
  glusterd -f "$STATE/glusterd.vol" -p "$STATE/glusterd.pid" --log-file="$STATE/log/glusterd.log" \
    </dev/null >/dev/null 2>&1 || die "glusterd did not start; log: $STATE/log/glusterd.log"
  for _ in $(seq 100); do port_open 24007 && g volume list >/dev/null 2>&1 && break; sleep 0.1; done
  g volume list >/dev/null 2>&1 || { tail -n 20 "$STATE/log/glusterd.log" >&2; die "glusterd does not answer"; }
  local host; host=$(brick_host)
  # force: the brick is on the root filesystem, which gluster otherwise refuses.
  g volume create "$VOL" "$host:$BRICK" force >/dev/null || die "could not create volume $VOL on $host:$BRICK"
  g volume set "$VOL" server.allow-insecure on >/dev/null
  g volume set "$VOL" storage.owner-uid "${OWNER%%:*}" >/dev/null
  g volume set "$VOL" storage.owner-gid "${OWNER##*:}" >/dev/null
  g volume start "$VOL" >/dev/null || die "could not start volume $VOL"
  for _ in $(seq 100); do brick_online && break; sleep 0.1; done
  brick_online || { g volume status "$VOL" >&2 || true; die "the brick of $VOL did not come online"; }
  say "up ($(url), brick $host:$BRICK, owner $OWNER)"
}

# The pids of the brick processes of our volume (glusterfsd started by our glusterd).
brick_pids() {
  pgrep -f "glusterfsd .*--volfile-id $VOL\." 2>/dev/null | while read -r p; do
    tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q -- "$BRICK" && echo "$p"
  done
  true
}

down() {
  # The brick processes and what they keep outside the state dir (-p PIDFILE -S SOCKET -l LOG),
  # found before `volume stop` ends them.
  local bricks leftovers="" p
  bricks=$(brick_pids)
  for p in $bricks; do
    leftovers="$leftovers $(tr '\0' '\n' < "/proc/$p/cmdline" | awk 'f {print; f=0} /^-(p|S|l)$/ {f=1}')"
  done
  if pid_alive "$STATE/glusterd.pid"; then
    g volume stop "$VOL" force >/dev/null 2>&1 || true
    g volume delete "$VOL" >/dev/null 2>&1 || true
  fi
  local pids="$bricks"
  [ -f "$STATE/glusterd.pid" ] && pids="$pids $(cat "$STATE/glusterd.pid")"
  # glusterd's other children (the self-heal / quota daemons) name our working directory.
  pids="$pids $(pgrep -f -- "$WORK" 2>/dev/null || true)"
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=0
    for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break; sleep 0.1
  done
  for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
  for f in $leftovers; do rm -f "$f"; done
  rm -rf "/var/run/gluster/vols/$VOL"
  rm -rf "$STATE"
  say "down"
}

url() { echo "gluster://127.0.0.1/$VOL"; }

case $cmd in
  up) up;;
  down) down;;
  status) if pid_alive "$STATE/glusterd.pid" && brick_online; then say "running ($(url))"; else say "not running"; exit 1; fi;;
  url) url;;
  dir) echo "$BRICK";;
  *) echo "usage: $0 up|down|status|url|dir" >&2; exit 2;;
esac
