#!/usr/bin/env bash
# Side-by-side benchmark of getting a VMDK or VHDX into RBD, same input, same cluster, same run:
#   rbdkit import-raw SRC images/X                        (the file, grains decoded in parallel)
#   cat SRC | rbdkit import-raw - images/X                (the stream, as it comes out of an OVA)
#   qemu-img convert -W -m 16 -O raw SRC rbd:images/X     (needs qemu-block-extra; scripts/install-bench-deps.sh)
#   two-step: qemu-img convert -O raw SRC tmp.raw && rbd import tmp.raw images/X
#   ceiling: rbd bench writing 1 GiB in 4 MiB writes, 16 in flight (the cluster's own write
#     speed with nothing read: no import of this 1 GiB can beat it, so it bounds every ratio)
#   read-and-write-only: the same rbd bench while `cat SRC >/dev/null` reads the input cold
#     (the input and the OSD share one disk: the floor of an import, nothing decoded)
# and local conversion: rbdkit convert vs qemu-img convert -W -m 16 -O raw (outputs synced).
# Inputs (INPUTS, default "vmdk vhdx"), each 1 GiB of random data made by qemu-img convert:
#   vmdk: streamOptimized (an OVA's disk: every grain deflate-compressed, none smaller than it was);
#   vhdx: dynamic (the default 8 MiB blocks: uncompressed, so the import is bound by I/O).
# Each row: wall seconds (min, median, max), median user+sys CPU seconds and median peak RSS;
# ratios of medians to rbdkit's.
# Usage: CEPH_CONF=... scripts/bench-vmdk.sh [ROUNDS=3] [WORKDIR=/var/tmp/rbdkit-bench]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
bench_args "$@"
POOL=images
tag=$$

[ -f "$WORK/dense.raw" ] || head -c 1G /dev/urandom > "$WORK/dense.raw"
declare -A SRC=([vmdk]="$WORK/dense-so.vmdk" [vhdx]="$WORK/dense-dyn.vhdx")
declare -A MAKE=([vmdk]="-O vmdk -o subformat=streamOptimized" [vhdx]="-O vhdx -o subformat=dynamic")
INPUTS=${INPUTS:-vmdk vhdx}
for n in $INPUTS; do
  [ -n "${SRC[$n]:-}" ] || { echo "bench-vmdk: unknown input $n (vmdk, vhdx)" >&2; exit 2; }
  [ -f "${SRC[$n]}" ] || qemu-img convert ${MAKE[$n]} "$WORK/dense.raw" "${SRC[$n]}"
done
probe=$(qemu-img info "rbd:$POOL/nonexistent-$tag:conf=$CEPH_CONF" 2>&1 || true)
has_qemu_rbd=1
grep -qiE "unknown protocol|unknown driver|not supported|unable to load module" <<<"$probe" && has_qemu_rbd=0
[ "$has_qemu_rbd" = 1 ] || echo "note: qemu-img has no rbd driver; run scripts/install-bench-deps.sh for its column" >&2

run_job() {
  local t src=${SRC[$2]}
  case $1 in
    rbdkit) t=$(time_cmd "$RBDKIT" --no-progress import-raw "$src" "$POOL/v-rk-$tag"); rmimg "v-rk-$tag" ;;
    rbdkit-stdin) t=$(time_cmd bash -c "cat '$src' | '$RBDKIT' --no-progress import-raw - '$POOL/v-rs-$tag'"); rmimg "v-rs-$tag" ;;
    qemu-img-W-m16) t=$(time_cmd qemu-img convert -W -m 16 -O raw "$src" "rbd:$POOL/v-qm-$tag:conf=$CEPH_CONF"); rmimg "v-qm-$tag" ;;
    two-step) t=$(time_cmd bash -c "qemu-img convert -O raw '$src' '$WORK/vtmp-$tag.raw' && rbd import --no-progress '$WORK/vtmp-$tag.raw' '$POOL/v-ts-$tag'")
      rmimg "v-ts-$tag"; rm -f "$WORK/vtmp-$tag.raw" ;;
    convert-rbdkit) t=$(time_cmd bash -c "'$RBDKIT' --no-progress convert --overwrite '$src' '$WORK/vout-rk-$tag.raw' && sync"); rm -f "$WORK/vout-rk-$tag.raw" ;;
    convert-qemu-img-W-m16) t=$(time_cmd bash -c "qemu-img convert -W -m 16 -O raw '$src' '$WORK/vout-qm-$tag.raw' && sync"); rm -f "$WORK/vout-qm-$tag.raw" ;;
    ceiling) rbd create --size 1G --image-feature layering "$POOL/v-ce-$tag"
      t=$(time_cmd rbd bench --io-type write --io-size 4M --io-threads 16 --io-total 1G --io-pattern seq "$POOL/v-ce-$tag"); rmimg "v-ce-$tag" ;;
    read-and-write-only) rbd create --size 1G --image-feature layering "$POOL/v-fl-$tag"
      t=$(time_cmd bash -c "cat '$src' >/dev/null & rbd bench --io-type write --io-size 4M --io-threads 16 --io-total 1G --io-pattern seq '$POOL/v-fl-$tag' && wait"); rmimg "v-fl-$tag" ;;
  esac
  T["$2:$1"]+="$t "
}

tools=(rbdkit rbdkit-stdin)   # rbdkit-stdin: vmdk only (a VHDX cannot be read in one pass)
[ "$has_qemu_rbd" = 1 ] && tools+=(qemu-img-W-m16)
tools+=(two-step ceiling read-and-write-only convert-rbdkit convert-qemu-img-W-m16)
declare -A T=()
for r in $(seq 1 "$ROUNDS"); do
  for job in $(for n in $INPUTS; do printf "$n:%s\n" "${tools[@]}"; done | grep -v '^vhdx:rbdkit-stdin$' | shuffle "vmdk$r"); do
    run_job "${job#*:}" "${job%%:*}"
  done
done
printf '\n%-6s %-24s %8s %8s %8s %9s %8s %8s\n' input tool min median max vs_rbdkit cpu_s rss_mib
for n in $INPUTS; do
  base=$(median $(field 1 ${T[$n:rbdkit]})); cbase=$(median $(field 1 ${T[$n:convert-rbdkit]}))
  for tool in "${tools[@]}"; do
    [ -n "${T[$n:$tool]:-}" ] || continue
    runs=(${T[$n:$tool]}); vals=($(field 1 "${runs[@]}")); m=$(median "${vals[@]}")
    ref=$base; case $tool in convert-*) ref=$cbase;; esac
    printf '%-6s %-24s %8.2f %8.2f %8.2f %8.2fx %8.2f %8.0f\n' "$n" "$tool" \
      "$(printf '%s\n' "${vals[@]}" | sort -g | head -1)" "$m" "$(printf '%s\n' "${vals[@]}" | sort -g | tail -1)" \
      "$(awk -v a="$m" -v b="$ref" 'BEGIN{print a/b}')" \
      "$(median $(field 2 "${runs[@]}"))" "$(median $(field 3 "${runs[@]}"))"
  done
done
echo "(seconds; vs_rbdkit = tool time / rbdkit time (convert rows: / rbdkit convert), so 2.00x means rbdkit is twice as fast; cpu_s = median user+sys seconds; rss_mib = median peak RSS of the largest process)"
