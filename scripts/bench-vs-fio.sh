#!/usr/bin/env bash
# rbdkit bench vs fio, same settings, same run: 4k randwrite and randread, iodepth 32, 1 job,
# rbd cache = false; fio's rbd engine on the same RBD image and fio's io_uring engine (O_DIRECT)
# on the same file. Rounds alternate which tool goes first, so drift on a shared machine hits
# both alike; each pair gives an IOPS ratio and the summary is the median ratio per job.
# CPU per I/O is like for like: the whole process's user+system time (getrusage of the child,
# librbd's threads included for both tools) divided by the I/Os it completed.
# Each run's I/O count is also checked against the server's own count of the same run: the
# block device's completed reads+writes (/sys/class/block/DEV/stat) for the file, the OSDs'
# op_r+op_w counters for RBD. srv = server count / the tool's reported count (1.00 = exact).
# With RBDKIT_GLUSTER_URL set (scripts/gluster-server.sh url), a gluster row too: fio's
# gfapi_async engine (Debian's fio has gfapi and gfapi_async) against rbdkit's gluster:// target
# on the same 1 GiB file of the volume; no server-side I/O count exists there (srv prints -).
# iSCSI: Debian's fio has no libiscsi engine (`fio --enghelp`), and fio's sg and libaio engines
# need a kernel initiator these machines do not have (no /dev/sdX can appear). With
# RBDKIT_ISCSI_URL set (scripts/lvm-iscsi.sh url; the LUN is overwritten), an iscsi row compares
# rbdkit's iscsi:// target with `iscsi-perf` from libiscsi-bin (the same library, 32 READ(16)s
# in flight, -r random) instead: randread only, as iscsi-perf only reads. Its I/O count is its
# own "iops average" times the runtime; no server-side count (srv prints -).
# Usage: CEPH_CONF=... [ONLY="rbd iscsi"] scripts/bench-vs-fio.sh [RUNTIME_S=10] [ROUNDS=5] [FILE_DIR=/var/tmp]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNTIME=${1:-10}; ROUNDS=${2:-5}; FDIR=${3:-/var/tmp}
: "${CEPH_CONF:?set CEPH_CONF (eval \"\$(scripts/dev-cluster.sh env)\")}"
RBDKIT=${RBDKIT:-${CARGO_TARGET_DIR:-target}/release/rbdkit}
[ -x "$RBDKIT" ] || cargo build --release --quiet
work=$(mktemp -d); img="fio-cmp-$$"; file="$FDIR/rbdkit-fio-cmp-$$.img"
# --norandommap: rbdkit draws uniform random offsets (with replacement); fio's default random
# map (every block once per pass) is a different access pattern and costs fio CPU per I/O.
# Both tools read this conf: the cluster's, with the librbd cache off.
conf="$work/ceph.conf"; cp "$CEPH_CONF" "$conf"; printf '\n[client]\nrbd cache = false\n' >> "$conf"
export CEPH_CONF=$conf
targets="rbd file"
gfile="fio-cmp-$$.img"
if [ -n "${RBDKIT_GLUSTER_URL:-}" ]; then
  targets="$targets gluster"
  ghost=${RBDKIT_GLUSTER_URL#gluster://}; gvol=${ghost#*/}; ghost=${ghost%%/*}
  # fio lays the file out (1 GiB written): both tools then overwrite and read data.
  fio --name=layout --ioengine=gfapi --volume="$gvol" --brick="${ghost%%:*}" --filename="$gfile" \
      --size=1G --bs=1M --rw=write --output=/dev/null
fi
if [ -n "${RBDKIT_ISCSI_URL:-}" ]; then
  command -v iscsi-perf >/dev/null || { echo "iscsi-perf not found: apt-get install libiscsi-bin" >&2; exit 1; }
  targets="$targets iscsi"
  # Written whole first: reads of unmapped blocks would return zeros without touching the disk.
  lun_size=$(iscsi-readcapacity16 "$RBDKIT_ISCSI_URL" | sed -n 's/^Total size://p')
  "$RBDKIT" --no-progress bench "$RBDKIT_ISCSI_URL" --rw write --bs 1M --iodepth 8 \
    --io-total "$lun_size" --allow-existing >/dev/null
fi
# ONLY="iscsi rbd": just those rows (each still needs its server as above).
if [ -n "${ONLY:-}" ]; then
  for t in $ONLY; do
    case " $targets " in *" $t "*) ;; *) echo "ONLY: no $t row (targets: $targets)" >&2; exit 2 ;; esac
  done
  targets=$ONLY
fi
cleanup() {
  rbd rm --no-progress "volumes/$img" >/dev/null 2>&1 || true; rm -rf "$work" "$file"
  # fio's unlink=1 removes the file from the volume after one read.
  [ -z "${RBDKIT_GLUSTER_URL:-}" ] || fio --name=rm --ioengine=gfapi --volume="$gvol" --brick="${ghost%%:*}" \
    --filename="$gfile" --size=1G --bs=4k --io_size=4k --rw=read --unlink=1 --output=/dev/null >/dev/null 2>&1 || true
}
trap cleanup EXIT
rbd create "volumes/$img" --size 1G --image-feature layering
rbd bench --io-type write --io-size 4M --io-total 1G --io-pattern seq "volumes/$img" >/dev/null   # prefill: reads hit data
truncate -s 1G "$file"; dd if=/dev/urandom of="$file" bs=4M count=256 oflag=direct conv=notrunc status=none

# The block device under the file, for its I/O counters.
fdev=$(basename "$(df --output=source "$FDIR" | tail -1)")
[ -r "/sys/class/block/$fdev/stat" ] || { echo "no block-device counters for $FDIR ($fdev)" >&2; exit 1; }
# server_ios TARGET: completed I/Os as the server counts them, since boot/OSD start.
server_ios() {
  if [ "$1" = file ]; then awk '{print $1 + $5}' "/sys/class/block/$fdev/stat"; return; fi
  local n=0 id
  for id in $(ceph osd ls); do
    n=$((n + $(ceph tell "osd.$id" perf dump | python3 -c 'import json,sys; d=json.load(sys.stdin)["osd"]; print(d["op_r"] + d["op_w"])')))
  done
  echo "$n"
}

# timed OUT CMD...: runs CMD with stdout to OUT; prints the child's user+system CPU seconds.
timed() {
  python3 - "$@" <<'PY'
import resource, subprocess, sys
out, cmd = sys.argv[1], sys.argv[2:]
with open(out, "w") as f:
    rc = subprocess.run(cmd, stdout=f, stderr=subprocess.PIPE, text=True)
if rc.returncode != 0:
    sys.stderr.write(rc.stderr); sys.exit(1)
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{ru.ru_utime + ru.ru_stime:.4f}")
PY
}
# --thread: fio runs its job as a thread of the process timed, as rbdkit does. Forked (fio's
# default), the gfapi job's CPU was missing from the count: 0.18 s for a 3 s gfapi_async run,
# 3.01 s with --thread, 2.79 s by perf sampling every thread of the forked run.
fio_run() { # fio_run ENGINE_ARGS... -> "iops cpu_us_per_io ios"
  local cpu
  cpu=$(timed "$work/fio.json" fio --thread --name=cmp --bs=4k --iodepth=32 --numjobs=1 --runtime="$RUNTIME" \
        --time_based --output-format=json --randrepeat=0 --norandommap "$@")
  python3 - "$work/fio.json" "$cpu" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
# gfapi_async prints a warning on stdout ahead of the report.
j = json.loads(text[text.index("{"):])["jobs"][0]
ios = j["read"]["total_ios"] + j["write"]["total_ios"]
iops = j["read"]["iops"] + j["write"]["iops"]
print(f"{iops:.0f} {float(sys.argv[2]) * 1e6 / max(ios, 1):.1f} {ios}")
PY
}
perf_run() { # perf_run URL RW -> "iops cpu_us_per_io ios" (iscsi-perf: 4 KiB reads, 32 in flight)
  local cpu random=()
  [ "$2" = randread ] && random=(-r)
  cpu=$(timed "$work/perf.txt" iscsi-perf -m 32 -b 8 -t "$RUNTIME" "${random[@]}" "$1")
  python3 - "$work/perf.txt" "$cpu" "$RUNTIME" <<'PY'
import re, sys
avg = re.findall(r"iops average (\d+)", open(sys.argv[1], errors="replace").read())
if not avg:
    sys.exit("iscsi-perf printed no 'iops average'")
iops = float(avg[-1]); ios = iops * float(sys.argv[3])
print(f"{iops:.0f} {float(sys.argv[2]) * 1e6 / max(ios, 1):.1f} {ios:.0f}")
PY
}
rk_run() { # rk_run TARGET RW -> "iops cpu_us_per_io ios"
  local cpu
  cpu=$(timed /dev/null "$RBDKIT" --no-progress bench "$1" --rw "$2" --bs 4K --iodepth 32 --jobs 1 \
        --runtime "${RUNTIME}s" --keep --allow-existing --json "$work/rk.json")
  python3 - "$work/rk.json" "$cpu" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f"{r['iops']:.0f} {float(sys.argv[2]) * 1e6 / max(r['ios'], 1):.1f} {r['ios']}")
PY
}

# checked TARGET RUN ARGS...: "iops cpu srv" where srv = server-counted I/Os / reported I/Os.
checked() {
  local t=$1 a b iops cpu ios; shift
  if [ "$t" = gluster ] || [ "$t" = iscsi ]; then read -r iops cpu ios < <("$@"); echo "$iops $cpu -"; return; fi
  a=$(server_ios "$t"); read -r iops cpu ios < <("$@"); b=$(server_ios "$t")
  echo "$iops $cpu $(awk -v s=$((b - a)) -v n="$ios" 'BEGIN{printf "%.3f", s / (n > 0 ? n : 1)}')"
}

printf '%-7s %-10s %-5s %-6s %10s %10s %8s %11s %11s %7s %7s\n' target rw round first fio_iops rk_iops ratio fio_cpu_us rk_cpu_us fio_srv rk_srv
ratios="$work/ratios"; : > "$ratios"
for rw in randwrite randread; do
  for r in $(seq 1 "$ROUNDS"); do
    for target in $targets; do
      [ "$target" = iscsi ] && [ "$rw" != randread ] && continue   # iscsi-perf only reads
      run_ref=fio_run
      if [ "$target" = rbd ]; then
        fio_args=(--ioengine=rbd --clientname=admin --pool=volumes --rbdname="$img" --rw="$rw")
        rk_target="rbd:volumes/$img"
      elif [ "$target" = iscsi ]; then
        run_ref=perf_run; fio_args=("$RBDKIT_ISCSI_URL" "$rw")
        rk_target=$RBDKIT_ISCSI_URL
      elif [ "$target" = gluster ]; then
        fio_args=(--ioengine=gfapi_async --volume="$gvol" --brick="${ghost%%:*}" --filename="$gfile" --size=1G --rw="$rw")
        rk_target="$RBDKIT_GLUSTER_URL/$gfile"
      else
        fio_args=(--ioengine=io_uring --direct=1 --filename="$file" --size=1G --rw="$rw")
        rk_target="file:$file"
      fi
      if [ $((r % 2)) = 1 ]; then
        first=fio; read -r fi fc fs < <(checked "$target" "$run_ref" "${fio_args[@]}"); read -r ri rc rs < <(checked "$target" rk_run "$rk_target" "$rw")
      else
        first=rbdkit; read -r ri rc rs < <(checked "$target" rk_run "$rk_target" "$rw"); read -r fi fc fs < <(checked "$target" "$run_ref" "${fio_args[@]}")
      fi
      ratio=$(awk -v a="$ri" -v b="$fi" 'BEGIN{printf "%.3f", a/b}')
      echo "$target $rw $ratio $fc $rc $fs $rs" >> "$ratios"
      printf '%-7s %-10s %-5s %-6s %10s %10s %7.2fx %11s %11s %7s %7s\n' "$target" "$rw" "$r" "$first" "$fi" "$ri" "$ratio" "$fc" "$rc" "$fs" "$rs"
    done
  done
done
echo
echo "summary (median over $ROUNDS rounds; ratio = rbdkit IOPS / fio IOPS (iscsi: / iscsi-perf IOPS); cpu = whole-process CPU µs per I/O;"
echo "         srv = I/Os the device or OSDs counted / I/Os the tool reported)"
python3 - "$ratios" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    t, rw, *nums = line.split()
    rows.setdefault((t, rw), []).append(tuple(float(x) for x in nums if x != "-"))
print(f"{'target':<7} {'rw':<10} {'median':>7} {'min':>6} {'max':>6} {'within10%':>9} {'fio_cpu':>8} {'rk_cpu':>8} {'fio_srv':>8} {'rk_srv':>8}")
for (t, rw), v in rows.items():
    r = [x[0] for x in v]
    inside = sum(1 for x in r if 0.9 <= x <= 1.1)
    print(f"{t:<7} {rw:<10} {statistics.median(r):6.2f}x {min(r):5.2f}x {max(r):5.2f}x {inside:>5}/{len(r):<3} "
          f"{statistics.median(x[1] for x in v):8.1f} {statistics.median(x[2] for x in v):8.1f} "
          + (f"{statistics.median(x[3] for x in v):8.3f} {statistics.median(x[4] for x in v):8.3f}" if len(v[0]) > 4 else f"{'-':>8} {'-':>8}"))
PY
