#!/usr/bin/env bash
# Side-by-side benchmark of Cinder-style RBD backups, same volume, same cluster, same run:
#   full:        rbdkit backup VOL backups          vs  rbd export-diff VOL@A - | rbd import-diff - BASE
#   incremental: rbdkit backup VOL backups          vs  rbd export-diff --from-snap A VOL@B - | rbd import-diff - BASE
# (the second is what cinder-backup runs; rbdkit's times include making the snapshot and
# reading the backup back to compare its sha256-blocks checksum with the volume's).
# The volume: 10 GiB holding 2 GiB of random data (32 runs of 64 MiB, every 320 MiB), layering
# only (as Cinder creates them). Each round changes 256 MiB of it — 48 scattered 4 MiB writes
# and 1024 scattered 64 KiB writes — then runs both incrementals in a seeded order, each from
# its own chain's previous backup. Page cache dropped before every run.
# Floors, same run: floor-read-write, `rbd bench` reading the volume's 2 GiB of data (a dense
# copy of it) while another `rbd bench` writes 2 GiB into a new image: what any full backup
# must at least do; floor-read-back, that read alone: what rbdkit's check adds to a full backup.
# Incremental floors, each round: floor-inc-read, `rbd export-diff` of the round's changes into
# tmpfs (the read alone); floor-inc-write, `rbd import-diff` of that file into a third chain
# (the write alone, into a base with snapshots, as every incremental writes).
# Each row: wall seconds (min, median, max), vs_rbdkit (tool time / rbdkit time), median
# user+sys CPU seconds, that per GiB of data the row moves (2 GiB full, 256 MiB incremental)
# and median peak RSS (MiB) of the largest process.
# Usage: CEPH_CONF=... scripts/bench-backup.sh [ROUNDS=3] [WORKDIR=/var/tmp/rbdkit-bench]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
bench_args "$@"
POOL=volumes
BPOOL=backups
tag=$$
VOL="volume-bb$tag"
RBASE="$VOL.backup.rbdpipe"
FBASE="$VOL.backup.floor"
SHM=$(mktemp -d /dev/shm/rbdkit-bench-backup.XXXXXX)

if [ ! -f "$WORK/thin10g.raw" ]; then
  python3 - "$WORK/thin10g.raw" <<'PY'
import os, sys
with open(sys.argv[1], "wb") as f:
    f.truncate(10 << 30)
    for i in range(32):
        f.seek(i * (320 << 20)); f.write(os.urandom(64 << 20))
PY
fi
cleanup() {
  for img in "$POOL/$VOL" "$POOL/volume-bd$tag" $(rbd ls "$BPOOL" | grep "^$VOL" | sed "s|^|$BPOOL/|"); do
    rbd snap purge --no-progress "$img" >/dev/null 2>&1 || true
    rbd rm --no-progress "$img" >/dev/null 2>&1 || true
  done
  # rbdkit's block digests, kept next to each backup.
  rados -p "$BPOOL" ls 2>/dev/null | grep "^rbdkit\.backup-digests\.$VOL\." | while read -r o; do
    rados -p "$BPOOL" rm "$o" 2>/dev/null || true
  done
}
trap 'cleanup; rm -rf "$SHM"' EXIT
rbd import --no-progress --image-feature layering "$WORK/thin10g.raw" "$POOL/$VOL"


# change SEED: 256 MiB of new random data at seeded offsets (48 x 4 MiB + 1024 x 64 KiB),
# written with rbd import-diff of a hand-made stream (no tool under test writes it).
change() {
  python3 - "$1" <<'PY' | rbd import-diff --no-progress - "$POOL/$VOL"
import os, random, struct, sys
r = random.Random(sys.argv[1]); size = 10 << 30
recs = {}
for _ in range(48): recs[r.randrange(size >> 22) << 22] = 4 << 20
for _ in range(1024): recs.setdefault(r.randrange(size >> 16) << 16, 64 << 10)
out = sys.stdout.buffer
out.write(b"rbd diff v1\ns" + struct.pack("<Q", size))
end = 0
for off in sorted(recs):
    n = recs[off]
    if off < end: continue
    out.write(b"w" + struct.pack("<QQ", off, n) + os.urandom(n)); end = off + n
out.write(b"e")
PY
}

declare -A T=()
# Full backups, once each (each makes its chain's first backup).
rbd snap create "$POOL/$VOL@rbd0" >/dev/null
T[full-rbd]=$(time_cmd bash -c "rbd create --size 10G --image-feature layering '$BPOOL/$RBASE' && rbd export-diff --no-progress '$POOL/$VOL@rbd0' - | rbd import-diff --no-progress - '$BPOOL/$RBASE'")
ERR="$WORK/bench-backup.err"; : > "$ERR"
# The floors' chain, untimed.
rbd create --size 10G --image-feature layering "$BPOOL/$FBASE"
rbd export-diff --no-progress "$POOL/$VOL@rbd0" - | rbd import-diff --no-progress - "$BPOOL/$FBASE"
T[full-rbdkit]=$(time_cmd bash -c "'$RBDKIT' --no-progress backup '$POOL/$VOL' '$BPOOL' 2>>'$ERR'") || { cat "$ERR" >&2; exit 1; }
for r in $(seq 1 "$ROUNDS"); do
  change "r$r"
  for tool in $(printf '%s\n' inc-rbdkit inc-rbd | shuffle "x$r"); do
    case $tool in
      inc-rbdkit) t=$(time_cmd bash -c "'$RBDKIT' --no-progress backup '$POOL/$VOL' '$BPOOL' 2>>'$ERR'") || { cat "$ERR" >&2; exit 1; } ;;
      inc-rbd) t=$(time_cmd bash -c "rbd snap create '$POOL/$VOL@rbd$r' >/dev/null && rbd export-diff --no-progress --from-snap rbd$((r-1)) '$POOL/$VOL@rbd$r' - | rbd import-diff --no-progress - '$BPOOL/$RBASE'") ;;
    esac
    T[$tool]+="$t "
  done
  T[floor-inc-read]+="$(time_cmd bash -c "rbd export-diff --no-progress --from-snap rbd$((r-1)) '$POOL/$VOL@rbd$r' '$SHM/inc.diff'") "
  T[floor-inc-write]+="$(time_cmd bash -c "rbd import-diff --no-progress '$SHM/inc.diff' '$BPOOL/$FBASE'") "
  rm -f "$SHM/inc.diff"
done
# The floors, once per round, after the incrementals (the dense image is made once).
DENSE="$POOL/volume-bd$tag"
rbd create --size 2G --image-feature layering "$DENSE"
rbd bench --io-type write --io-size 4M --io-threads 16 --io-total 2G --io-pattern seq "$DENSE" >/dev/null
READ_2G="rbd bench --io-type read --io-size 4M --io-threads 16 --io-total 2G --io-pattern seq '$DENSE' >/dev/null"
for r in $(seq 1 "$ROUNDS"); do
  rbd create --size 2G --image-feature layering "$BPOOL/$VOL.floor"
  T[floor-read-write]+="$(time_cmd bash -c "$READ_2G & rbd bench --io-type write --io-size 4M --io-threads 16 --io-total 2G --io-pattern seq '$BPOOL/$VOL.floor' >/dev/null; wait \$!") "
  rbd rm --no-progress "$BPOOL/$VOL.floor" >/dev/null
  T[floor-read-back]+="$(time_cmd bash -c "$READ_2G") "
done
rbd rm --no-progress "$DENSE" >/dev/null

# Every backup of both chains must read back as the volume's snapshot did.
last=$("$RBDKIT" --format json backup ls "$BPOOL" "$VOL" | python3 -c 'import json,sys; c=[c for c in json.load(sys.stdin)["chains"] if not c["base"].endswith((".rbdpipe", ".floor"))][0]; print(c["base"]+"@"+c["backups"][-1]["snap"])')
a=$(rbd export --no-progress "$last" - | sha256sum); b=$(rbd export --no-progress "$BPOOL/$RBASE@rbd$ROUNDS" - | sha256sum)
[ "$a" = "$b" ] || { echo "the two chains' last backups differ" >&2; exit 1; }

printf '\n%-16s %8s %8s %8s %9s %8s %9s %8s\n' tool min median max vs_rbdkit cpu_s cpu_s/GiB rss_mib
for tool in full-rbdkit full-rbd floor-read-write floor-read-back inc-rbdkit inc-rbd floor-inc-read floor-inc-write; do
  runs=(${T[$tool]}); vals=($(field 1 "${runs[@]}")); m=$(median "${vals[@]}")
  # The data each row moves: the volume's 2 GiB, or a round's 256 MiB of changes.
  case $tool in full-*|floor-read-*) ref=full-rbdkit; gib=2 ;; inc-*|floor-inc-*) ref=inc-rbdkit; gib=0.25 ;; esac
  base=$(median $(field 1 ${T[$ref]})); cpu=$(median $(field 2 "${runs[@]}"))
  printf '%-16s %8.2f %8.2f %8.2f %8.2fx %8.2f %9.2f %8.0f\n' "$tool" \
    "$(printf '%s\n' "${vals[@]}" | sort -g | head -1)" "$m" "$(printf '%s\n' "${vals[@]}" | sort -g | tail -1)" \
    "$(awk -v a="$m" -v b="$base" 'BEGIN{print a/b}')" "$cpu" "$(awk -v c="$cpu" -v g="$gib" 'BEGIN{print c/g}')" "$(median $(field 3 "${runs[@]}"))"
done
echo "(seconds; vs_rbdkit = tool time / rbdkit time, so 2.00x means rbdkit is twice as fast)"
