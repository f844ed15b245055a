#!/usr/bin/env bash
# Side-by-side benchmark of writing an RBD image out as qcow2, same image, same cluster, same run:
#   rbdkit export IMG OUT.qcow2 -O qcow2 --compress zlib   vs  qemu-img convert -c -O qcow2 rbd:IMG OUT
#   rbdkit export ... --compress zstd                      vs  qemu-img convert -c -O qcow2 -o compression_type=zstd ...
#   rbdkit export IMG OUT.qcow2 -O qcow2                   vs  qemu-img convert -O qcow2 rbd:IMG OUT,
#                                                              and with -W -m 16 (qemu-img's best flags)
# (qemu-img's rbd driver: qemu-block-extra, scripts/install-bench-deps.sh). rbdkit runs with its
# defaults, the sha256-tree checksum of the disk included; every output is synced.
# The image: an ext4 filesystem of ~960 MB of real files (/usr/share, /usr/include,
# /usr/lib/python3, /usr/libexec, hard-linked into a staging directory) in 2 GiB virtual,
# imported once with `rbd import`: compressible data, as a Nova snapshot of a root disk is.
# Page cache dropped before every run; tools in a new (seeded) order each round.
# Each row: wall seconds (min, median, max), vs_rbdkit (tool time / rbdkit time of the same
# kind), median user+sys CPU seconds, median peak RSS (MiB), and the output's allocated MiB.
# Usage: CEPH_CONF=... scripts/bench-qcow2-out.sh [ROUNDS=3] [WORKDIR=/var/tmp/rbdkit-bench]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
bench_args "$@"
POOL=images
tag=$$
SRC="$POOL/bq-src-$tag"
QSRC="rbd:$SRC:conf=$CEPH_CONF"

probe=$(qemu-img info "rbd:$POOL/nonexistent-$tag:conf=$CEPH_CONF" 2>&1 || true)
if grep -qi "unknown protocol" <<<"$probe"; then
  echo "bench-qcow2-out: qemu-img has no rbd driver: run scripts/install-bench-deps.sh" >&2
  exit 1
fi

if [ ! -f "$WORK/fs1g.raw" ]; then
  rm -rf "$WORK/fs1g.stage"; mkdir -p "$WORK/fs1g.stage"
  for d in /usr/share /usr/include /usr/lib/python3 /usr/libexec; do
    cp -al "$d" "$WORK/fs1g.stage/$(basename "$d")" 2>/dev/null || cp -a "$d" "$WORK/fs1g.stage/$(basename "$d")"
  done
  truncate -s 2G "$WORK/fs1g.tmp"
  mkfs.ext4 -q -F -d "$WORK/fs1g.stage" "$WORK/fs1g.tmp" >/dev/null
  mv "$WORK/fs1g.tmp" "$WORK/fs1g.raw"
  rm -rf "$WORK/fs1g.stage"
fi
rbd import --no-progress --image-feature layering "$WORK/fs1g.raw" "$SRC"
OUT="$WORK/bq-out-$tag.qcow2"
trap 'rbd rm --no-progress "$SRC" >/dev/null 2>&1 || true; rm -f "$OUT"' EXIT


run_job() {
  local t
  rm -f "$OUT"
  case $1 in
    zlib-rbdkit) t=$(time_cmd bash -c "'$RBDKIT' --no-progress export '$SRC' '$OUT' -O qcow2 --compress zlib && sync") ;;
    zlib-qemu) t=$(time_cmd bash -c "qemu-img convert -c -O qcow2 '$QSRC' '$OUT' && sync") ;;
    zstd-rbdkit) t=$(time_cmd bash -c "'$RBDKIT' --no-progress export '$SRC' '$OUT' -O qcow2 --compress zstd && sync") ;;
    zstd-qemu) t=$(time_cmd bash -c "qemu-img convert -c -O qcow2 -o compression_type=zstd '$QSRC' '$OUT' && sync") ;;
    plain-rbdkit) t=$(time_cmd bash -c "'$RBDKIT' --no-progress export '$SRC' '$OUT' -O qcow2 && sync") ;;
    plain-qemu) t=$(time_cmd bash -c "qemu-img convert -O qcow2 '$QSRC' '$OUT' && sync") ;;
    plain-qemu-W16) t=$(time_cmd bash -c "qemu-img convert -W -m 16 -O qcow2 '$QSRC' '$OUT' && sync") ;;
  esac
  # Every output must be a sound image, or its time means nothing.
  qemu-img check -q "$OUT" || { echo "bench-qcow2-out: $1 wrote an image qemu-img check refuses" >&2; exit 1; }
  T[$1]+="$t/$(( $(du -k "$OUT" | cut -f1) / 1024 )) "
}

tools=(zlib-rbdkit zlib-qemu zstd-rbdkit zstd-qemu plain-rbdkit plain-qemu plain-qemu-W16)
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
