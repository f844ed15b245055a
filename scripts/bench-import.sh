#!/usr/bin/env bash
# Side-by-side benchmark of getting a qcow2 into RBD, same inputs, same cluster, same run:
#   rbdkit import-raw SRC images/X                       (default checksum: sha256-tree)
#   rbdkit import-raw --checksum sha256 SRC images/X     (sha256sum's checksum: every byte, one core)
#   qemu-img convert -W -O raw SRC rbd:images/X          (needs qemu-block-extra; scripts/install-bench-deps.sh)
#   qemu-img convert -W -m 16 -O raw SRC rbd:images/X    (qemu-img's best flags: 16 coroutines)
#   qemu-img convert -T none -W -m 16 ...                (the same, the input read with O_DIRECT:
#                                                         no page-cache copies, best on dense input)
#   two-step: qemu-img convert -O raw SRC tmp.raw && rbd import tmp.raw images/X   (Cinder's path)
#   rbd import RAW images/X                              (the raw file already exists)
#   cat SRC | rbdkit import-raw - images/X               (the qcow2 streamed from a pipe)
#   rbd bench, 1 GiB of 4M writes                        (the cluster's write ceiling, dense rows)
#   cat SRC >/dev/null & rbd bench ...                   (dense rows: the input read cold while the
#                                                         cluster writes 1 GiB, and no other work;
#                                                         both share this machine's one disk)
#   rbdkit import-raw --no-checksum, qcow2 in page cache  (dense rows: like rbd bench, no input reads)
# and local conversion: rbdkit convert vs qemu-img convert -O raw (defaults and -W -m 16) and
# nbdcopy -- [ qemu-nbd -r -f qcow2 SRC ] DEST (libnbd-bin), every output synced.
# Each row: wall seconds (min, median, max), median user+sys CPU seconds and median peak RSS.
# Inputs: (a) 1 GiB random data as qcow2, (b) sparse qcow2 ~25 % allocated (4 GiB virtual),
#         (c) zlib-compressed qcow2 of an ext4 filesystem made from /usr/share (~680 MB of files, 2 GiB virtual).
# Prints min/median/max of ROUNDS runs for each and the ratio of medians to rbdkit's.
# Usage: CEPH_CONF=... scripts/bench-import.sh [ROUNDS=3] [WORKDIR=/var/tmp/rbdkit-bench]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
bench_args "$@"
POOL=images
tag=$$

make_inputs() {
  if [ ! -f "$WORK/dense.qcow2" ]; then
    head -c 1G /dev/urandom > "$WORK/dense.raw"
    qemu-img convert -O qcow2 "$WORK/dense.raw" "$WORK/dense.qcow2"
  fi
  if [ ! -f "$WORK/sparse.qcow2" ]; then
    qemu-img create -q -f qcow2 "$WORK/sparse.qcow2" 4G
    # 1 GiB of random data in 1 MiB pieces spread over the 4 GiB disk (every 4th MiB).
    python3 - "$WORK/sparse.qcow2" <<'PY'
import os, subprocess, sys
cmds = []
for i in range(0, 4096, 4):
    cmds += ["-c", f"write -P {1 + i % 250} {i}M 1M"]
for k in range(0, len(cmds), 400):
    subprocess.run(["qemu-io", "-f", "qcow2", *cmds[k:k+400], sys.argv[1]], check=True, stdout=subprocess.DEVNULL)
PY
    # Replace the pattern with random bytes so zero detection and compression cannot cheat.
    qemu-img convert -O raw "$WORK/sparse.qcow2" "$WORK/sparse.tmp.raw"
    python3 - "$WORK/sparse.tmp.raw" <<'PY'
import os, sys
with open(sys.argv[1], "r+b") as f:
    for i in range(0, 4096, 4):
        f.seek(i << 20); f.write(os.urandom(1 << 20))
PY
    qemu-img convert -O qcow2 "$WORK/sparse.tmp.raw" "$WORK/sparse.qcow2"
    rm -f "$WORK/sparse.tmp.raw"
  fi
  if [ ! -f "$WORK/fs.qcow2" ]; then
    rm -f "$WORK/fs.raw"; truncate -s 2G "$WORK/fs.raw"
    mkfs.ext4 -q -F -d /usr/share "$WORK/fs.raw" >/dev/null
    qemu-img convert -c -O qcow2 "$WORK/fs.raw" "$WORK/fs.qcow2"
    rm -f "$WORK/fs.raw"
  fi
  for n in dense sparse fs; do
    [ -f "$WORK/$n.flat.raw" ] || qemu-img convert -O raw "$WORK/$n.qcow2" "$WORK/$n.flat.raw"
  done
}


has_qemu_rbd=0
# A missing rbd module shows as an unknown protocol; a present one reaches the cluster.
probe=$(qemu-img info "rbd:$POOL/nonexistent-$tag:conf=$CEPH_CONF" 2>&1 || true)
grep -qiE "unknown protocol|unknown driver|not supported|failed to initialize module" <<<"$probe" || has_qemu_rbd=1
[ "$has_qemu_rbd" = 1 ] || echo "note: qemu-img has no working rbd driver; run scripts/install-bench-deps.sh for the qemu-img direct column" >&2

make_inputs

# run_job TOOL: one timed run of TOOL on input $n, appended to T[TOOL].
run_job() {
  local src="$WORK/$n.qcow2" t
  case $1 in
    rbdkit) t=$(time_cmd "$RBDKIT" --no-progress import-raw "$src" "$POOL/b-rk-$tag"); rmimg "b-rk-$tag" ;;
    rbdkit-sha256) t=$(time_cmd "$RBDKIT" --no-progress import-raw --checksum sha256 "$src" "$POOL/b-r2-$tag"); rmimg "b-r2-$tag" ;;
    rbdkit-no-checksum) t=$(time_cmd "$RBDKIT" --no-progress import-raw --no-checksum "$src" "$POOL/b-rn-$tag"); rmimg "b-rn-$tag" ;;
    rbdkit-stdin) t=$(time_cmd bash -c "cat '$src' | '$RBDKIT' --no-progress import-raw - '$POOL/b-rs-$tag'"); rmimg "b-rs-$tag" ;;
    # rbd bench reads no input; this row doesn't either (the qcow2 is in the page cache), so it
    # compares with the ceiling without the source's reads competing with the OSD for the disk.
    rbdkit-no-checksum-warm) cat "$src" >/dev/null
      t=$(WARM=1 time_cmd "$RBDKIT" --no-progress import-raw --no-checksum "$src" "$POOL/b-rw-$tag"); rmimg "b-rw-$tag" ;;
    ceiling-rbd-bench) # the cluster's own write ceiling in the same round: 1 GiB of 4M writes
      rbd create "$POOL/b-cb-$tag" --size 1G --image-feature layering
      t=$(time_cmd rbd bench --io-type write --io-size 4M --io-threads 16 --io-total 1G --io-pattern seq "$POOL/b-cb-$tag"); rmimg "b-cb-$tag" ;;
    read-and-write-only) # the two streams an import is made of, with nothing in between
      rbd create "$POOL/b-fl-$tag" --size 1G --image-feature layering
      t=$(time_cmd bash -c "cat '$src' >/dev/null & rbd bench --io-type write --io-size 4M --io-threads 16 --io-total 1G --io-pattern seq '$POOL/b-fl-$tag' && wait"); rmimg "b-fl-$tag" ;;
    qemu-img-W) t=$(time_cmd qemu-img convert -W -O raw "$src" "rbd:$POOL/b-qi-$tag:conf=$CEPH_CONF"); rmimg "b-qi-$tag" ;;
    qemu-img-W-m16) t=$(time_cmd qemu-img convert -W -m 16 -O raw "$src" "rbd:$POOL/b-qm-$tag:conf=$CEPH_CONF"); rmimg "b-qm-$tag" ;;
    qemu-img-T-none-W-m16) t=$(time_cmd qemu-img convert -T none -W -m 16 -O raw "$src" "rbd:$POOL/b-qd-$tag:conf=$CEPH_CONF"); rmimg "b-qd-$tag" ;;
    two-step) t=$(time_cmd bash -c "qemu-img convert -O raw '$src' '$WORK/tmp-$tag.raw' && rbd import --no-progress '$WORK/tmp-$tag.raw' '$POOL/b-ts-$tag'")
      rmimg "b-ts-$tag"; rm -f "$WORK/tmp-$tag.raw" ;;
    rbd-import-raw) t=$(time_cmd rbd import --no-progress "$WORK/$n.flat.raw" "$POOL/b-ri-$tag"); rmimg "b-ri-$tag" ;;
    # Both convert runs end with `sync`: rbdkit fsyncs its output, qemu-img leaves dirty pages
    # behind, and only data on disk compares like for like.
    convert-rbdkit) t=$(time_cmd bash -c "'$RBDKIT' --no-progress convert --overwrite '$src' '$WORK/out-rk-$tag.raw' && sync"); rm -f "$WORK/out-rk-$tag.raw" ;;
    convert-qemu-img) t=$(time_cmd bash -c "qemu-img convert -O raw '$src' '$WORK/out-qi-$tag.raw' && sync"); rm -f "$WORK/out-qi-$tag.raw" ;;
    convert-qemu-img-W-m16) t=$(time_cmd bash -c "qemu-img convert -W -m 16 -O raw '$src' '$WORK/out-qm-$tag.raw' && sync"); rm -f "$WORK/out-qm-$tag.raw" ;;
    convert-nbdcopy) t=$(time_cmd bash -c "truncate -s \$(qemu-img info --output=json '$src' | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"virtual-size\"])') '$WORK/out-nb-$tag.raw' && nbdcopy -- [ qemu-nbd -r -f qcow2 '$src' ] '$WORK/out-nb-$tag.raw' && sync"); rm -f "$WORK/out-nb-$tag.raw" ;;
  esac
  T[$1]+="$t "
}

has_nbdcopy=0; command -v nbdcopy >/dev/null && command -v qemu-nbd >/dev/null && has_nbdcopy=1
printf '\n%-7s %-24s %8s %8s %8s %8s %8s %8s\n' input tool min median max vs_rbdkit cpu_s rss_mib
for n in dense sparse fs; do
  tools=(rbdkit rbdkit-sha256 rbdkit-no-checksum rbdkit-stdin)
  [ "$n" = dense ] && tools+=(rbdkit-no-checksum-warm ceiling-rbd-bench read-and-write-only)
  [ "$has_qemu_rbd" = 1 ] && tools+=(qemu-img-W qemu-img-W-m16 qemu-img-T-none-W-m16)
  tools+=(two-step rbd-import-raw convert-rbdkit convert-qemu-img convert-qemu-img-W-m16)
  [ "$has_nbdcopy" = 1 ] && tools+=(convert-nbdcopy)
  declare -A T=()
  for r in $(seq 1 "$ROUNDS"); do
    # A new order each round (seeded, so reruns repeat it): what ran just before a tool (an
    # image removal the OSD is still digesting, a file still being written back) must not
    # always fall on the same tool.
    for tool in $(printf '%s\n' "${tools[@]}" | shuffle "$n$r"); do
      run_job "$tool"
    done
  done
  base=$(median $(field 1 ${T[rbdkit]})); cbase=$(median $(field 1 ${T[convert-rbdkit]}))
  for tool in "${tools[@]}"; do
    [ -n "${T[$tool]:-}" ] || continue
    runs=(${T[$tool]}); vals=($(field 1 "${runs[@]}")); m=$(median "${vals[@]}")
    ref=$base; case $tool in convert-*) ref=$cbase;; esac
    printf '%-7s %-24s %8.2f %8.2f %8.2f %7.2fx %8.2f %8.0f\n' "$n" "$tool" \
      "$(printf '%s\n' "${vals[@]}" | sort -g | head -1)" "$m" "$(printf '%s\n' "${vals[@]}" | sort -g | tail -1)" \
      "$(awk -v a="$m" -v b="$ref" 'BEGIN{print a/b}')" \
      "$(median $(field 2 "${runs[@]}"))" "$(median $(field 3 "${runs[@]}"))"
  done
  unset T
done
echo "(seconds; vs_rbdkit = tool time / rbdkit time, so 2.00x means rbdkit is twice as fast; cpu_s = median user+sys seconds; rss_mib = median peak RSS of the largest process)"
