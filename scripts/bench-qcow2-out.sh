#!/usr/bin/env bash
# Side-by-side benchmark of writing an RBD image out as qcow2, same image, same cluster, same run:
#   rbdkit export IMG OUT.qcow2 -O qcow2 --compress zlib   vs  qemu-img convert -c -W -m 16 -O qcow2 rbd:IMG OUT
#   rbdkit export ... --compress zstd                      vs  qemu-img convert -c -W -m 16 -O qcow2 -o compression_type=zstd ...
#   (-W -m 16: qemu-img's best flags; -W lets it compress clusters in parallel, 26.4 s → 16.0 s
#   for zlib here)
#   rbdkit export IMG OUT.qcow2 -O qcow2                   vs  qemu-img convert -O qcow2 rbd:IMG OUT,
#                                                              and with -W -m 16 (qemu-img's best flags)
#   rbdkit export IMG@SNAP - -O qcow2 > OUT (a qcow2 stream, the Glance upload without a temp file)
#                                                          vs  rbdkit export IMG@SNAP OUT.qcow2 -O qcow2 (the file)
#                                                          vs  rbd export IMG@SNAP TMP.raw && qemu-img convert -O qcow2
#                                                              TMP.raw OUT (the two-step path through a raw temp file)
# (qemu-img's rbd driver: qemu-block-extra, scripts/install-bench-deps.sh). rbdkit runs with its
# defaults, the sha256-tree checksum of the disk included; every output is synced.
# The image: an ext4 filesystem of ~960 MB of real files (/usr/share, /usr/include,
# /usr/lib/python3, /usr/libexec, hard-linked into a staging directory) in 2 GiB virtual,
# imported once with `rbd import`: compressible data, as a Nova snapshot of a root disk is.
# Page cache dropped before every run; tools in a new (seeded) order each round.
# Each row: wall seconds (min, median, max), vs_rbdkit (tool time / rbdkit time of the same
# kind), median user+sys CPU seconds, median peak RSS (MiB), and the output's allocated MiB.
# Usage: CEPH_CONF=... scripts/bench-qcow2-out.sh [ROUNDS=3] [WORKDIR=/var/tmp/rbdkit-bench]
#   TOOLS="stream-rbdkit stream-file stream-2step" runs only those rows (a group's ratios need
#   its -rbdkit row); FS_DIRS="/usr/include" FS_SIZE=512M makes a smaller image (cached apart).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
bench_args "$@"
POOL=images
tag=$$
SRC="$POOL/bq-src-$tag"
QSRC="rbd:$SRC:conf=$CEPH_CONF"

tools=(${TOOLS:-zlib-rbdkit zlib-qemu zstd-rbdkit zstd-qemu plain-rbdkit plain-qemu plain-qemu-W16 stream-rbdkit stream-file stream-2step})
# Only the rows reading rbd: through qemu-img need its rbd driver.
probe=$(qemu-img info "rbd:$POOL/nonexistent-$tag:conf=$CEPH_CONF" 2>&1 || true)
if [[ " ${tools[*]}" == *-qemu* ]] && grep -qi "unknown protocol" <<<"$probe"; then
  echo "bench-qcow2-out: qemu-img has no rbd driver: run scripts/install-bench-deps.sh" >&2
  exit 1
fi

FS_DIRS=${FS_DIRS:-/usr/share /usr/include /usr/lib/python3 /usr/libexec}
FS_SIZE=${FS_SIZE:-2G}
FS=fs1g
[ "$FS_DIRS $FS_SIZE" = "/usr/share /usr/include /usr/lib/python3 /usr/libexec 2G" ] ||
  FS=fs-$(printf '%s' "$FS_DIRS $FS_SIZE" | cksum | cut -d' ' -f1)
if [ ! -f "$WORK/$FS.raw" ]; then
  rm -rf "$WORK/$FS.stage"; mkdir -p "$WORK/$FS.stage"
  for d in $FS_DIRS; do
    cp -al "$d" "$WORK/$FS.stage/$(basename "$d")" 2>/dev/null || cp -a "$d" "$WORK/$FS.stage/$(basename "$d")"
  done
  truncate -s "$FS_SIZE" "$WORK/$FS.tmp"
  mkfs.ext4 -q -F -d "$WORK/$FS.stage" "$WORK/$FS.tmp" >/dev/null
  mv "$WORK/$FS.tmp" "$WORK/$FS.raw"
  rm -rf "$WORK/$FS.stage"
fi
rbd import --no-progress --image-feature layering "$WORK/$FS.raw" "$SRC"
rbd snap create --no-progress "$SRC@snap" >/dev/null
SNAP="$SRC@snap"
OUT="$WORK/bq-out-$tag.qcow2"
TMP_RAW="$WORK/bq-tmp-$tag.raw"
trap 'rbd snap purge --no-progress "$SRC" >/dev/null 2>&1 || true; rbd rm --no-progress "$SRC" >/dev/null 2>&1 || true; rm -f "$OUT" "$TMP_RAW"' EXIT


run_job() {
  local t
  rm -f "$OUT"
  case $1 in
    zlib-rbdkit) t=$(time_cmd bash -c "'$RBDKIT' --no-progress export '$SRC' '$OUT' -O qcow2 --compress zlib && sync") ;;
    zlib-qemu) t=$(time_cmd bash -c "qemu-img convert -c -W -m 16 -O qcow2 '$QSRC' '$OUT' && sync") ;;
    zstd-rbdkit) t=$(time_cmd bash -c "'$RBDKIT' --no-progress export '$SRC' '$OUT' -O qcow2 --compress zstd && sync") ;;
    zstd-qemu) t=$(time_cmd bash -c "qemu-img convert -c -W -m 16 -O qcow2 -o compression_type=zstd '$QSRC' '$OUT' && sync") ;;
    plain-rbdkit) t=$(time_cmd bash -c "'$RBDKIT' --no-progress export '$SRC' '$OUT' -O qcow2 && sync") ;;
    plain-qemu) t=$(time_cmd bash -c "qemu-img convert -O qcow2 '$QSRC' '$OUT' && sync") ;;
    plain-qemu-W16) t=$(time_cmd bash -c "qemu-img convert -W -m 16 -O qcow2 '$QSRC' '$OUT' && sync") ;;
    stream-rbdkit) t=$(time_cmd bash -c "'$RBDKIT' --no-progress export '$SNAP' - -O qcow2 > '$OUT' && sync") ;;
    stream-file) t=$(time_cmd bash -c "'$RBDKIT' --no-progress export '$SNAP' '$OUT' -O qcow2 && sync") ;;
    stream-2step) t=$(time_cmd bash -c "rbd export --no-progress '$SNAP' '$TMP_RAW' && qemu-img convert -O qcow2 '$TMP_RAW' '$OUT' && rm -f '$TMP_RAW' && sync") ;;
  esac
  # Every output must be a sound image, or its time means nothing.
  qemu-img check -q "$OUT" || { echo "bench-qcow2-out: $1 wrote an image qemu-img check refuses" >&2; exit 1; }
  T[$1]+="$t/$(( $(du -k "$OUT" | cut -f1) / 1024 )) "
}

declare -A T=()
echo "load before: $(cat /proc/loadavg)"
for r in $(seq 1 "$ROUNDS"); do
  for tool in $(printf '%s\n' "${tools[@]}" | shuffle "q$r"); do run_job "$tool"; done
done
echo "load after: $(cat /proc/loadavg)"
printf '\n%-16s %8s %8s %8s %9s %8s %8s %8s\n' tool min median max vs_rbdkit cpu_s rss_mib out_mib
for tool in "${tools[@]}"; do
  runs=(${T[$tool]}); vals=($(field 1 "${runs[@]}")); m=$(median "${vals[@]}")
  ref=${tool%%-*}-rbdkit
  base=$(median $(field 1 ${T[$ref]}))
  printf '%-16s %8.2f %8.2f %8.2f %8.2fx %8.2f %8.0f %8.0f\n' "$tool" \
    "$(printf '%s\n' "${vals[@]}" | sort -g | head -1)" "$m" "$(printf '%s\n' "${vals[@]}" | sort -g | tail -1)" \
    "$(awk -v a="$m" -v b="$base" 'BEGIN{print a/b}')" "$(median $(field 2 "${runs[@]}"))" \
    "$(median $(field 3 "${runs[@]}"))" "$(median $(field 4 "${runs[@]}"))"
done
echo "(seconds; vs_rbdkit = tool time / rbdkit time of the same kind, so 2.00x means rbdkit is twice as fast)"
