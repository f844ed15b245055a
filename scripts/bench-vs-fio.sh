#!/usr/bin/env bash
# rbdkit bench vs fio, same settings, same run: 4k randwrite and randread, iodepth 32, 1 job,
# rbd cache = false; fio's rbd engine on the same RBD image and fio's io_uring engine (O_DIRECT)
# on the same file. Prints IOPS and CPU time per I/O side by side, and the IOPS ratio.
# Usage: CEPH_CONF=... scripts/bench-vs-fio.sh [RUNTIME_S=10] [ROUNDS=2] [FILE_DIR=/var/tmp]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNTIME=${1:-10}; ROUNDS=${2:-2}; FDIR=${3:-/var/tmp}
: "${CEPH_CONF:?set CEPH_CONF (eval \"\$(scripts/dev-cluster.sh env)\")}"
RBDKIT=${RBDKIT:-${CARGO_TARGET_DIR:-target}/release/rbdkit}
[ -x "$RBDKIT" ] || cargo build --release --quiet
work=$(mktemp -d); img="fio-cmp-$$"; file="$FDIR/rbdkit-fio-cmp-$$.img"
# Both tools read this conf: the cluster's, with the librbd cache off.
conf="$work/ceph.conf"; cp "$CEPH_CONF" "$conf"; printf '\n[client]\nrbd cache = false\n' >> "$conf"
export CEPH_CONF=$conf
cleanup() { rbd rm --no-progress "volumes/$img" >/dev/null 2>&1 || true; rm -rf "$work" "$file"; }
trap cleanup EXIT
rbd create "volumes/$img" --size 1G --image-feature layering
rbd bench --io-type write --io-size 4M --io-total 1G --io-pattern seq "volumes/$img" >/dev/null   # prefill: reads hit data
truncate -s 1G "$file"; dd if=/dev/urandom of="$file" bs=4M count=256 oflag=direct conv=notrunc status=none

fio_run() { # fio_run ENGINE_ARGS... -> "iops cpu_us_per_io"
  fio --name=cmp --bs=4k --iodepth=32 --numjobs=1 --runtime="$RUNTIME" --time_based --output-format=json \
      --randrepeat=0 "$@" > "$work/fio.json" 2>"$work/fio.err" || { cat "$work/fio.err" >&2; return 1; }
  python3 - "$work/fio.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
ios = j["read"]["total_ios"] + j["write"]["total_ios"]
iops = j["read"]["iops"] + j["write"]["iops"]
cpu_s = (j["usr_cpu"] + j["sys_cpu"]) / 100.0 * j["job_runtime"] / 1000.0
print(f"{iops:.0f} {cpu_s * 1e6 / max(ios, 1):.1f}")
PY
}
rk_run() { # rk_run TARGET RW -> "iops cpu_us_per_io"
  "$RBDKIT" --no-progress bench "$1" --rw "$2" --bs 4k --iodepth 32 --jobs 1 --runtime "${RUNTIME}s" --keep \
    --json "$work/rk.json" >/dev/null
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.0f %.1f" % (r["iops"], r["cpu_us_per_io"]))' "$work/rk.json"
}

printf '%-8s %-10s %-6s %10s %10s %12s %12s %8s\n' target rw round fio_iops rbdkit_iops fio_cpu_us rbdkit_cpu_us ratio
for rw in randwrite randread; do
  for r in $(seq 1 "$ROUNDS"); do
    read -r fi fc < <(fio_run --ioengine=rbd --clientname=admin --pool=volumes --rbdname="$img" --rw="$rw")
    read -r ri rc < <(rk_run "rbd:volumes/$img" "$rw")
    printf '%-8s %-10s %-6s %10s %10s %12s %12s %7.2fx\n' rbd "$rw" "$r" "$fi" "$ri" "$fc" "$rc" "$(awk -v a="$ri" -v b="$fi" 'BEGIN{print a/b}')"
    read -r fi fc < <(fio_run --ioengine=io_uring --direct=1 --filename="$file" --size=1G --rw="$rw")
    read -r ri rc < <(rk_run "file:$file" "$rw")
    printf '%-8s %-10s %-6s %10s %10s %12s %12s %7.2fx\n' file "$rw" "$r" "$fi" "$ri" "$fc" "$rc" "$(awk -v a="$ri" -v b="$fi" 'BEGIN{print a/b}')"
  done
done
echo "(ratio = rbdkit IOPS / fio IOPS; cpu = CPU time of the whole process per I/O, µs)"
