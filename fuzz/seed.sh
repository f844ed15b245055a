#!/usr/bin/env bash
# Seeds fuzz/corpus/qcow2 with tiny qcow2 images made by qemu-img covering the features the
# reader handles: v2/v3, cluster sizes, zero clusters, compressed deflate/zstd, extended L2,
# a qcow2 backing file, and (named relative to the fuzz target's work directory, where the
# target keeps a `base.raw`) a raw backing file and an external data file.
set -euo pipefail
cd "$(dirname "$0")"
out=$PWD/corpus/qcow2; mkdir -p "$out"; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
mk() { local name=$1 size=$2; shift 2; qemu-img create -q -f qcow2 "$@" "$name" "$size"; }
io() { local img=$1; shift; local a=(); for c in "$@"; do a+=(-c "$c"); done; qemu-io -f qcow2 "${a[@]}" "$img" >/dev/null; }
mk v2.qcow2 1M -o compat=0.10,cluster_size=512; io v2.qcow2 "write -P 1 0 4k" "write -P 2 600k 1k"
mk v3.qcow2 1M -o cluster_size=4096; io v3.qcow2 "write -P 3 0 8k" "write -z 64k 8k"
mk ext.qcow2 1M -o extended_l2=on,cluster_size=16k; io ext.qcow2 "write -P 4 0 1k" "write -z 20k 1k" "write -P 5 40k 3k"
qemu-img convert -c -O qcow2 -o cluster_size=4096 v3.qcow2 deflate.qcow2
qemu-img convert -c -O qcow2 -o cluster_size=4096,compression_type=zstd v3.qcow2 zstd.qcow2
mk back.qcow2 1M -o cluster_size=4096 -b v3.qcow2 -F qcow2; io back.qcow2 "write -P 5 4k 4k"
qemu-img create -q -f raw base.raw 64k
mk back-raw.qcow2 1M -o cluster_size=4096 -b base.raw -F raw; io back-raw.qcow2 "write -P 7 8k 4k"
mk data-file.qcow2 64k -o cluster_size=4096,data_file=base.raw; io data-file.qcow2 "write -P 8 4k 4k"
rm -f base.raw
cp ./*.qcow2 "$out"/
ls -l "$out"
