#!/usr/bin/env bash
# Side-by-side benchmark: N volumes cloned from one images/<parent>@snap and resized, made by
#   (a) a shell loop of `rbd clone` + `rbd resize` (what scripts and Cinder-like tools do), and
#   (b) one `rbdkit clone ... --count N --size SIZE`,
# on the same cluster, in the same run, alternating, several rounds. Prints times and the ratio.
# Usage: CEPH_CONF=... scripts/bench-clone.sh [N=50] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-50}
ROUNDS=${2:-3}
: "${CEPH_CONF:?set CEPH_CONF (eval \"\$(scripts/dev-cluster.sh env)\")}"
RBDKIT=${RBDKIT:-${CARGO_TARGET_DIR:-target}/release/rbdkit}
[ -x "$RBDKIT" ] || cargo build --release --quiet
parent="images/bench-clone-parent-$$"
rbd create "$parent" --size 512M --image-feature layering
rbd snap create "$parent@snap"
rbd snap protect "$parent@snap"
cleanup_vols() { rbd ls volumes | grep -E "^bench-clone-(loop|rk)-$$-" | while read -r v; do rbd rm --no-progress "volumes/$v" >/dev/null 2>&1 || true; done; }
finish() { cleanup_vols; rbd snap unprotect "$parent@snap" 2>/dev/null || true; rbd snap rm "$parent@snap" 2>/dev/null || true; rbd rm --no-progress "$parent" >/dev/null 2>&1 || true; }
trap finish EXIT

now() { date +%s.%N; }
loop_times=(); rk_times=()
for r in $(seq 1 "$ROUNDS"); do
  t0=$(now)
  for i in $(seq 1 "$N"); do
    rbd clone "$parent@snap" "volumes/bench-clone-loop-$$-$i"
    rbd resize --no-progress --size 1G "volumes/bench-clone-loop-$$-$i" >/dev/null
  done
  t1=$(now); loop_times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')")
  cleanup_vols
  t0=$(now)
  "$RBDKIT" --no-progress clone "$parent@snap" "volumes/bench-clone-rk-$$-{n}" --count "$N" --size 1G >/dev/null
  t1=$(now); rk_times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')")
  cleanup_vols
  printf 'round %d: rbd loop %.2f s, rbdkit %.2f s\n' "$r" "${loop_times[-1]}" "${rk_times[-1]}"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ml=$(median "${loop_times[@]}"); mr=$(median "${rk_times[@]}")
printf 'N=%d clones+resize, median of %d rounds: rbd loop %.2f s, rbdkit clone %.2f s, ratio %.1fx\n' \
  "$N" "$ROUNDS" "$ml" "$mr" "$(awk -v a="$ml" -v b="$mr" 'BEGIN{print a/b}')"
