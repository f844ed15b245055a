#!/usr/bin/env bash
# Side-by-side benchmark of getting a streamOptimized VMDK (an OVA's disk) into RBD, same
# input, same cluster, same run:
#   rbdkit import-raw SRC images/X                        (the file, grains decoded in parallel)
#   cat SRC | rbdkit import-raw - images/X                (the stream, as it comes out of an OVA)
#   qemu-img convert -W -m 16 -O raw SRC rbd:images/X     (needs qemu-block-extra; scripts/install-bench-deps.sh)
#   two-step: qemu-img convert -O raw SRC tmp.raw && rbd import tmp.raw images/X
# and local conversion: rbdkit convert vs qemu-img convert -W -m 16 -O raw (outputs synced).
# Input: 1 GiB of random data in a 1 GiB streamOptimized VMDK (qemu-img convert -o
# subformat=streamOptimized: every grain deflate-compressed, none smaller than it was).
# Each row: wall seconds (min, median, max), median user+sys CPU seconds and median peak RSS;
# ratios of medians to rbdkit's.
# Usage: CEPH_CONF=... scripts/bench-vmdk.sh [ROUNDS=3] [WORKDIR=/var/tmp/rbdkit-bench]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
bench_args "$@"
POOL=images
tag=$$

src="$WORK/dense-so.vmdk"
if [ ! -f "$src" ]; then
  [ -f "$WORK/dense.raw" ] || head -c 1G /dev/urandom > "$WORK/dense.raw"
  qemu-img convert -O vmdk -o subformat=streamOptimized "$WORK/dense.raw" "$src"
fi
probe=$(qemu-img info "rbd:$POOL/nonexistent-$tag:conf=$CEPH_CONF" 2>&1 || true)
has_qemu_rbd=1
grep -qiE "unknown protocol|unknown driver|not supported|unable to load module" <<<"$probe" && has_qemu_rbd=0
[ "$has_qemu_rbd" = 1 ] || echo "note: qemu-img has no rbd driver; run scripts/install-bench-deps.sh for its column" >&2

run_job() {
  local t
  case $1 in
    rbdkit) t=$(time_cmd "$RBDKIT" --no-progress import-raw "$src" "$POOL/v-rk-$tag"); rmimg "v-rk-$tag" ;;
    rbdkit-stdin) t=$(time_cmd bash -c "cat '$src' | '$RBDKIT' --no-progress import-raw - '$POOL/v-rs-$tag'"); rmimg "v-rs-$tag" ;;
    qemu-img-W-m16) t=$(time_cmd qemu-img convert -W -m 16 -O raw "$src" "rbd:$POOL/v-qm-$tag:conf=$CEPH_CONF"); rmimg "v-qm-$tag" ;;
    two-step) t=$(time_cmd bash -c "qemu-img convert -O raw '$src' '$WORK/vtmp-$tag.raw' && rbd import --no-progress '$WORK/vtmp-$tag.raw' '$POOL/v-ts-$tag'")
      rmimg "v-ts-$tag"; rm -f "$WORK/vtmp-$tag.raw" ;;
    convert-rbdkit) t=$(time_cmd bash -c "'$RBDKIT' --no-progress convert --overwrite '$src' '$WORK/vout-rk-$tag.raw' && sync"); rm -f "$WORK/vout-rk-$tag.raw" ;;
    convert-qemu-img-W-m16) t=$(time_cmd bash -c "qemu-img convert -W -m 16 -O raw '$src' '$WORK/vout-qm-$tag.raw' && sync"); rm -f "$WORK/vout-qm-$tag.raw" ;;
  esac
  T[$1]+="$t "
}

tools=(rbdkit rbdkit-stdin)
[ "$has_qemu_rbd" = 1 ] && tools+=(qemu-img-W-m16)
tools+=(two-step convert-rbdkit convert-qemu-img-W-m16)
declare -A T=()
for r in $(seq 1 "$ROUNDS"); do
  for tool in $(printf '%s\n' "${tools[@]}" | shuffle "vmdk$r"); do
    run_job "$tool"
  done
done
printf '\n%-24s %8s %8s %8s %9s %8s %8s\n' tool min median max vs_rbdkit cpu_s rss_mib
base=$(median $(field 1 ${T[rbdkit]})); cbase=$(median $(field 1 ${T[convert-rbdkit]}))
for tool in "${tools[@]}"; do
  runs=(${T[$tool]}); vals=($(field 1 "${runs[@]}")); m=$(median "${vals[@]}")
  ref=$base; case $tool in convert-*) ref=$cbase;; esac
  printf '%-24s %8.2f %8.2f %8.2f %8.2fx %8.2f %8.0f\n' "$tool" \
    "$(printf '%s\n' "${vals[@]}" | sort -g | head -1)" "$m" "$(printf '%s\n' "${vals[@]}" | sort -g | tail -1)" \
    "$(awk -v a="$m" -v b="$ref" 'BEGIN{print a/b}')" \
    "$(median $(field 2 "${runs[@]}"))" "$(median $(field 3 "${runs[@]}"))"
done
echo "(seconds; vs_rbdkit = tool time / rbdkit time (convert rows: / rbdkit convert), so 2.00x means rbdkit is twice as fast; cpu_s = median user+sys seconds; rss_mib = median peak RSS of the largest process)"
