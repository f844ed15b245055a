#!/usr/bin/env bash
# Seeds fuzz/corpus/vmdk with tiny VMDKs made by qemu-img: monolithicSparse, zeroed grains,
# streamOptimized (compressed grains with markers), and descriptor files naming the extents
# the fuzz target keeps in its work directory (`flat.raw`, `sparse.vmdk`).
set -euo pipefail
cd "$(dirname "$0")"
out=$PWD/corpus/vmdk; mkdir -p "$out"; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
io() { local img=$1; shift; local a=(); for c in "$@"; do a+=(-c "$c"); done; qemu-io -f vmdk "${a[@]}" "$img" >/dev/null; }
qemu-img create -q -f vmdk s.vmdk 256k; io s.vmdk "write -P 1 0 4k" "write -P 2 130k 1k"
qemu-img create -q -f vmdk -o zeroed_grain=on z.vmdk 256k; io z.vmdk "write -P 3 0 64k" "write -z 64k 64k"
qemu-img convert -O vmdk -o subformat=streamOptimized s.vmdk so.vmdk
printf '# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\nRW 64 FLAT "flat.raw" 0\n' > flat.vmdk
printf 'version=1\ncreateType="twoGbMaxExtentSparse"\nRW 128 SPARSE "sparse.vmdk"\nRW 8 FLAT "flat.raw" 4\n' > split.vmdk
cp ./*.vmdk "$out"/
ls -l "$out"
