#!/usr/bin/env bash
# Side-by-side benchmark of getting an RBD image out, same image, same cluster, same run:
#   rbdkit export IMG FILE   vs  rbd export IMG FILE            (to a local file, then sync)
#   rbdkit export IMG - | cat >/dev/null  vs  rbd export IMG - | cat >/dev/null   (a stream)
#   rbdkit copy IMG NEW      vs  rbd export IMG - | rbd import - NEW,  and rbd cp IMG NEW
#   read-ceiling: `rbd bench` reading a dense image holding the same 2 GiB (16 x 4M reads in
#   flight), the cluster's own read speed with nothing written: no tool that must read the
#   data can beat it, so it bounds every ratio above.
#   floor-file: that read while `dd` writes 2 GiB to a file on the work disk (then sync): what
#   an export to a file must at least do, nothing in between.
#   floor-copy: that read while `rbd bench` writes 2 GiB into a new image: what a copy must at
#   least do (the OSD serves both on one disk and two cores).
# The image: 10 GiB virtual holding 2 GiB of random data (32 runs of 64 MiB, every 320 MiB),
# imported once with `rbd import` (layering only, as Cinder and Glance create them).
# Page cache dropped before every run; tools in a new (seeded) order each round.
# Each row: wall seconds (min, median, max), vs_rbdkit (tool time / rbdkit time), median
# user+sys CPU seconds and median peak RSS (MiB) of the largest process.
# Usage: CEPH_CONF=... scripts/bench-export.sh [ROUNDS=3] [WORKDIR=/var/tmp/rbdkit-bench]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
bench_args "$@"
POOL=images
tag=$$
SRC="$POOL/bx-src-$tag"

if [ ! -f "$WORK/thin10g.raw" ]; then
  python3 - "$WORK/thin10g.raw" <<'PY'
import os, sys
with open(sys.argv[1], "wb") as f:
    f.truncate(10 << 30)
    for i in range(32):
        f.seek(i * (320 << 20)); f.write(os.urandom(64 << 20))
PY
fi
rbd import --no-progress --image-feature layering "$WORK/thin10g.raw" "$SRC"
DENSE="$POOL/bx-dense-$tag"
rbd create --size 2G --image-feature layering "$DENSE"
rbd bench --io-type write --io-size 4M --io-threads 16 --io-total 2G --io-pattern seq "$DENSE" >/dev/null
trap 'rbd rm --no-progress "$SRC" >/dev/null 2>&1 || true; rbd rm --no-progress "$DENSE" >/dev/null 2>&1 || true' EXIT


run_job() {
  local t out="$WORK/bx-out-$tag.raw"
  case $1 in
    export-rbdkit) t=$(time_cmd bash -c "'$RBDKIT' --no-progress export '$SRC' '$out' && sync"); rm -f "$out" ;;
    export-rbd) t=$(time_cmd bash -c "rbd export --no-progress '$SRC' '$out' && sync"); rm -f "$out" ;;
    stream-rbdkit) t=$(time_cmd bash -c "'$RBDKIT' --no-progress export '$SRC' - | cat >/dev/null") ;;
    stream-rbd) t=$(time_cmd bash -c "rbd export --no-progress '$SRC' - | cat >/dev/null") ;;
    copy-rbdkit) t=$(time_cmd "$RBDKIT" --no-progress copy "$SRC" "$POOL/bx-ck-$tag"); rmimg "bx-ck-$tag" ;;
    copy-rbd-pipe) t=$(time_cmd bash -c "rbd export --no-progress '$SRC' - | rbd import --no-progress - '$POOL/bx-cp-$tag'"); rmimg "bx-cp-$tag" ;;
    copy-rbd-cp) t=$(time_cmd rbd cp --no-progress "$SRC" "$POOL/bx-cc-$tag"); rmimg "bx-cc-$tag" ;;
    read-ceiling) t=$(time_cmd rbd bench --io-type read --io-size 4M --io-threads 16 --io-total 2G --io-pattern seq "$DENSE") ;;
    floor-file) t=$(time_cmd bash -c "$READ_2G & dd if=/dev/zero of='$out' bs=4M count=512 iflag=fullblock status=none conv=fsync; wait \$!"); rm -f "$out" ;;
    floor-copy) rbd create --size 2G --image-feature layering "$POOL/bx-fl-$tag"
      t=$(time_cmd bash -c "$READ_2G & rbd bench --io-type write --io-size 4M --io-threads 16 --io-total 2G --io-pattern seq '$POOL/bx-fl-$tag' >/dev/null; wait \$!"); rmimg "bx-fl-$tag" ;;
  esac
  T[$1]+="$t "
}

READ_2G="rbd bench --io-type read --io-size 4M --io-threads 16 --io-total 2G --io-pattern seq '$DENSE' >/dev/null"
tools=(export-rbdkit export-rbd stream-rbdkit stream-rbd copy-rbdkit copy-rbd-pipe copy-rbd-cp read-ceiling floor-file floor-copy)
declare -A T=()
for r in $(seq 1 "$ROUNDS"); do
  for tool in $(printf '%s\n' "${tools[@]}" | shuffle "x$r"); do run_job "$tool"; done
done
printf '\n%-16s %8s %8s %8s %9s %8s %8s\n' tool min median max vs_rbdkit cpu_s rss_mib
for tool in "${tools[@]}"; do
  runs=(${T[$tool]}); vals=($(field 1 "${runs[@]}")); m=$(median "${vals[@]}")
  case $tool in export-*|read-*|floor-file) ref=export-rbdkit ;; stream-*) ref=stream-rbdkit ;; copy-*|floor-copy) ref=copy-rbdkit ;; esac
  base=$(median $(field 1 ${T[$ref]}))
  printf '%-16s %8.2f %8.2f %8.2f %8.2fx %8.2f %8.0f\n' "$tool" \
    "$(printf '%s\n' "${vals[@]}" | sort -g | head -1)" "$m" "$(printf '%s\n' "${vals[@]}" | sort -g | tail -1)" \
    "$(awk -v a="$m" -v b="$base" 'BEGIN{print a/b}')" "$(median $(field 2 "${runs[@]}"))" "$(median $(field 3 "${runs[@]}"))"
done
echo "(seconds; vs_rbdkit = tool time / rbdkit time, so 2.00x means rbdkit is twice as fast)"
