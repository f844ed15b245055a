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
# A dynamic VHD with 4 KiB blocks and one block allocated, small enough to fuzz whole: the
# footer of s.vhd, its dynamic header with the block size and table changed, a 256-entry
# table, one block (bitmap sector + 4 KiB), the footer again.
python3 - s.vhd small.vhd <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
foot, dyn = b[:512], bytearray(b[512:1536])
struct.pack_into(">Q", dyn, 16, 1536); struct.pack_into(">I", dyn, 28, 256); struct.pack_into(">I", dyn, 32, 4096)
bat = bytearray(b"\xff" * 1024); struct.pack_into(">I", bat, 0, 2560 // 512)
block = b"\xff" + b"\0" * 511 + bytes((i * 7) & 0xff for i in range(4096))
open(sys.argv[2], "wb").write(foot + dyn + bat + block + foot)
PY
cp d.vhd f.vhd s.vhd small.vhd "$vhd"/
if qemu-img create -q -f vhdx -o block_size=1M d.vhdx 4M 2>/dev/null; then
  io vhdx d.vhdx "write -P 3 0 4k" "write -P 4 2M 4k"
  qemu-img create -q -f vhdx -o subformat=fixed,block_size=1M f.vhdx 1M
  cp d.vhdx f.vhdx "$vhdx"/
fi
ls -l "$vhd" "$vhdx"
