#!/usr/bin/env bash
# criterion benches of the hot paths against a saved baseline.
#   scripts/bench-baseline.sh save [NAME=main]     record a baseline (e.g. on main)
#   scripts/bench-baseline.sh compare [NAME=main]  run again and compare; exits 1 if criterion
#                                                  reports a regression ("Performance has regressed")
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-compare}; name=${2:-main}
case $mode in
  save) cargo bench --bench hot_paths -- --save-baseline "$name";;
  compare)
    out=$(mktemp); trap 'rm -f "$out"' EXIT
    cargo bench --bench hot_paths -- --baseline "$name" | tee "$out"
    if grep -q "Performance has regressed" "$out"; then
      echo "bench-baseline: regression against baseline '$name':" >&2
      grep -B3 "Performance has regressed" "$out" | grep -E "^[a-z_/0-9]+ " >&2 || true
      exit 1
    fi
    echo "bench-baseline: no regression against '$name'";;
  *) echo "usage: $0 save|compare [NAME]" >&2; exit 2;;
esac
