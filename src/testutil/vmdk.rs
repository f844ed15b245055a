//! What the VMDK tests share: a streamOptimized file laid out the way VMware writes it (grains
//! with markers first, then each grain table behind its marker, the directory, the footer and
//! the end-of-stream marker, and `GD_AT_END` in the header), built here from raw guest bytes
//! because qemu-img writes its tables at the front. qemu reads these files too, so the tests
//! check the builder against `qemu-img convert` before trusting it. It uses nothing but `std`
//! and `flate2`, so it compiles in the library (unit tests) and in the integration tests.
#![allow(dead_code)]

use std::io::Write;

const SECTOR: usize = 512;
/// Grain of the built files: 64 KiB, as VMware and qemu use.
pub const GRAIN: usize = 65536;

fn pad(v: &mut Vec<u8>) {
    v.resize(v.len().div_ceil(SECTOR) * SECTOR, 0);
}

fn marker(v: &mut Vec<u8>, val: u64, size: u32, kind: u32) {
    v.extend(val.to_le_bytes());
    v.extend(size.to_le_bytes());
    v.extend(kind.to_le_bytes());
    pad(v);
}

/// A header sector: `gd` is the directory's sector or `u64::MAX` (see the footer).
fn header(capacity_sectors: u64, gd: u64, overhead: u64, grain: usize) -> Vec<u8> {
    let mut h = vec![0u8; SECTOR];
    h[..4].copy_from_slice(b"KDMV");
    h[4..8].copy_from_slice(&3u32.to_le_bytes());
    h[8..12].copy_from_slice(&0x30001u32.to_le_bytes());
    h[12..20].copy_from_slice(&capacity_sectors.to_le_bytes());
    h[20..28].copy_from_slice(&((grain / SECTOR) as u64).to_le_bytes());
    h[28..36].copy_from_slice(&1u64.to_le_bytes());
    h[36..44].copy_from_slice(&20u64.to_le_bytes());
    h[44..48].copy_from_slice(&512u32.to_le_bytes());
    h[56..64].copy_from_slice(&gd.to_le_bytes());
    h[64..72].copy_from_slice(&overhead.to_le_bytes());
    h[73..77].copy_from_slice(b"\n \r\n");
    h[77..79].copy_from_slice(&1u16.to_le_bytes());
    h
}

/// A VMware-style streamOptimized VMDK of the guest bytes `raw` (its length a multiple of
/// 512): every grain that is not all zeros is stored compressed.
pub fn vmware_stream(raw: &[u8]) -> Vec<u8> {
    vmware_stream_with_grain(raw, GRAIN)
}

/// [`vmware_stream`] with grains of `grain` bytes (a power of two, at least 4 KiB).
pub fn vmware_stream_with_grain(raw: &[u8], grain: usize) -> Vec<u8> {
    let capacity = (raw.len() / SECTOR) as u64;
    let grains = raw.len().div_ceil(grain);
    let overhead = 128u64;
    let mut v = header(capacity, u64::MAX, overhead, grain);
    let desc = format!(
        "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"streamOptimized\"\n\nRW {capacity} SPARSE \"disk.vmdk\"\n\nddb.adapterType = \"lsilogic\"\n"
    );
    v.extend(desc.as_bytes());
    v.resize(overhead as usize * SECTOR, 0);
    let mut gtes = vec![0u32; grains.div_ceil(512) * 512];
    for (g, chunk) in raw.chunks(grain).enumerate() {
        if chunk.iter().all(|&b| b == 0) {
            continue;
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(chunk).unwrap();
        let z = z.finish().unwrap();
        gtes[g] = (v.len() / SECTOR) as u32;
        v.extend(((g * grain / SECTOR) as u64).to_le_bytes());
        v.extend((z.len() as u32).to_le_bytes());
        v.extend(z);
        pad(&mut v);
    }
    let mut gd = Vec::new();
    for table in gtes.chunks(512) {
        marker(&mut v, 4, 0, 1);
        gd.push((v.len() / SECTOR) as u32);
        for e in table {
            v.extend(e.to_le_bytes());
        }
    }
    marker(&mut v, gd.len().div_ceil(128) as u64, 0, 2);
    let gd_sector = (v.len() / SECTOR) as u64;
    for e in &gd {
        v.extend(e.to_le_bytes());
    }
    pad(&mut v);
    marker(&mut v, 1, 0, 3);
    v.extend(header(capacity, gd_sector, overhead, grain));
    marker(&mut v, 0, 0, 0);
    v
}
