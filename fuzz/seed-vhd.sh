#!/usr/bin/env bash
# Seeds fuzz/corpus/vhd and fuzz/corpus/vhdx with tiny images made by qemu-img: VHD dynamic,
# fixed and force_size; VHDX dynamic and fixed with small blocks. Large images are cut down:
# the fuzzer mutates the metadata, the data blocks only make inputs slow.
set -euo pipefail
cd "$(dirname "$0")"
vhd=$PWD/corpus/vhd; vhdx=$PWD/corpus/vhdx; mkdir -p "$vhd" "$vhdx"; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
io() { local f=$1 img=$2; shift 2; local a=(); for c in "$@"; do a+=(-c "$c"); done; qemu-io -f "$f" "${a[@]}" "$img" >/dev/null; }
qemu-img create -q -f vpc d.vhd 1M; io vpc d.vhd "write -P 1 0 4k"
qemu-img create -q -f vpc -o subformat=fixed f.vhd 64k; io vpc f.vhd "write -P 2 0 4k"
qemu-img create -q -f vpc -o force_size=on s.vhd 1M
cp d.vhd f.vhd s.vhd "$vhd"/
if qemu-img create -q -f vhdx -o block_size=1M d.vhdx 4M 2>/dev/null; then
  io vhdx d.vhdx "write -P 3 0 4k" "write -P 4 2M 4k"
  qemu-img create -q -f vhdx -o subformat=fixed,block_size=1M f.vhdx 1M
  cp d.vhdx f.vhdx "$vhdx"/
fi
ls -l "$vhd" "$vhdx"
