# Shared by the side-by-side benchmark scripts (sourced, not run): timing with cold caches,
# seeded shuffles and medians. Needs $POOL for rmimg.

# The arguments and set-up every side-by-side script shares: ROUNDS ($1, default 3), WORK ($2,
# default /var/tmp/rbdkit-bench, created), a cluster in CEPH_CONF, and RBDKIT (the release
# binary, built when missing).
bench_args() {
  ROUNDS=${1:-3}
  WORK=${2:-/var/tmp/rbdkit-bench}
  : "${CEPH_CONF:?set CEPH_CONF (eval \"\$(scripts/dev-cluster.sh env)\")}"
  RBDKIT=${RBDKIT:-${CARGO_TARGET_DIR:-target}/release/rbdkit}
  [ -x "$RBDKIT" ] || cargo build --release --quiet
  mkdir -p "$WORK"
}
now() { date +%s.%N; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
rmimg() { rbd rm --no-progress "$POOL/$1" >/dev/null 2>&1 || true; }
# time_cmd CMD... : runs after dropping caches (unless WARM=1), prints "wall/cpu/rss_mib":
# wall seconds, user+sys CPU seconds of the command and everything it waited for, and the
# peak RSS of the largest of those processes.
time_cmd() {
  if [ "${WARM:-0}" = 1 ]; then sync; else drop_caches; fi
  local t0 t1 r; r=$(mktemp); t0=$(now)
  /usr/bin/time -o "$r" -f "%U %S %M" "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; rm -f "$r"; return 1; }
  t1=$(now)
  awk -v a="$t0" -v b="$t1" '{printf "%.3f/%.2f/%.0f", b-a, $1+$2, $3/1024}' "$r"; rm -f "$r"
}
# shuffle SEED: stdin's lines in an order fixed by SEED.
shuffle() { awk -v seed="$(( $(printf '%s' "$1" | cksum | cut -d' ' -f1) % 2147483647 ))" 'BEGIN{srand(seed)} {print rand() "\t" $0}' | sort -k1,1g | cut -f2-; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# field K RUN...: the K-th of the "/"-separated fields of each run (1 wall, 2 cpu, 3 rss).
field() { local k=$1; shift; for v in "$@"; do cut -d/ -f"$k" <<<"$v"; done; }
