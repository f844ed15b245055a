//! Forward-only decoding of a streamOptimized VMDK arriving as a stream (stdin, an OVA's disk
//! piped out of its tar): the header, the embedded descriptor, then from `overHead` on a
//! sequence of sector-aligned markers. A grain marker (guest sector, compressed length) carries
//! its grain; a metadata marker (length 0) introduces a grain table, the grain directory or the
//! footer, which a stream does not need and skips, or ends the stream. Whether the tables come
//! first (qemu-img) or last (VMware, header `GD_AT_END`), the grains describe themselves.
//!
//! Checked as the stream goes by: the header as for a file (but against no file size), the
//! descriptor's createType and parent (a stream can never follow one), each grain's sector (on a
//! grain boundary, inside the disk, after the previous grain: a stream in guest order, so no
//! grain is repeated or overlaps another), each grain's length (non-zero, at most two grains,
//! as qemu reads), each skipped table's length, the footer against the header, and the
//! end-of-stream marker. Memory: one grain's compressed bytes per event, handed to the caller.
//! Nothing here decodes the grains (the caller does, in parallel, with [`super::grain`]).
use super::descriptor::{self, Descriptor};
use super::header::{SparseHeader, MARKER_EOS, MARKER_FOOTER, MARKER_GD, MARKER_GT, SECTOR};
use super::ONE_FILE_TYPES;
use crate::error::{Error, Result};
use crate::text::escape;
use std::io::Read;

/// Most sectors of metadata a marker may introduce (the grain directory at its cap).
const MAX_META_SECTORS: u64 = super::header::MAX_GD_ENTRIES * 4 / SECTOR;

/// What the stream says about the guest disk, piece by piece; every guest byte below the
/// virtual size is covered by exactly one event, in guest order.
#[derive(Debug)]
pub enum Event {
    /// A guest range that no grain holds: reads as zeros.
    Zero {
        /// Guest offset.
        guest: u64,
        /// Bytes.
        len: u64,
    },
    /// A compressed grain for guest offset `guest`, `len` guest bytes once inflated.
    Grain {
        /// Guest offset of the grain.
        guest: u64,
        /// Its zlib stream, as stored after the marker.
        payload: Vec<u8>,
        /// Guest bytes it holds (a whole grain but at the end of the disk).
        len: usize,
    },
}

/// A streamOptimized VMDK whose header and descriptor have been read and checked.
pub struct VmdkStream {
    reader: Box<dyn Read + Send>,
    walk: Walk,
}

/// The walk over the markers, apart from the reader it reads (the copy engine hands it one that
/// notices a cancelled copy while the stream stalls).
pub struct Walk {
    name: String,
    header: SparseHeader,
    /// Bytes read from the stream so far.
    pos: u64,
    /// With the tables ahead of the grains (qemu-img's layout): the grains they list, in
    /// guest order. Such a stream may end without an end-of-stream marker (qemu-img writes
    /// none), so these are what tells a whole stream from a truncated one.
    listed: Option<Vec<u64>>,
}

/// What a finished stream tells.
#[derive(Clone, Copy, Debug, Default)]
pub struct StreamStats {
    /// Bytes read from the stream.
    pub bytes_read: u64,
    /// Grains it held.
    pub grains: u64,
}

impl VmdkStream {
    /// Reads and checks the header and descriptor of the stream `reader` (named `name` in
    /// errors) and skips to its first marker.
    pub fn open(reader: Box<dyn Read + Send>, name: &str) -> Result<VmdkStream> {
        let mut first = [0u8; SECTOR as usize];
        let mut reader = reader;
        let r = &mut reader;
        let mut s = Walk {
            name: name.to_string(),
            header: SparseHeader::default(),
            pos: 0,
            listed: None,
        };
        s.read_exact(r, &mut first, "its header")?;
        let h = SparseHeader::parse_stream_head(&first, name)?;
        if !(h.compressed && h.markers) {
            return Err(Error::bad_image(
                name,
                "VMDK monolithicSparse from a stream: only a streamOptimized VMDK (compressed grains with markers) can be read as it arrives; save it to a file first",
            ));
        }
        let (d0, dn) = (h.desc_offset, h.desc_sectors);
        if h.grain_offset > u64::MAX / SECTOR {
            return Err(Error::bad_image(
                name,
                format!(
                    "VMDK grains start at sector {}, past any stream: the image is corrupt",
                    h.grain_offset
                ),
            ));
        }
        if d0 == 0 || dn == 0 || d0.saturating_add(dn) > h.grain_offset {
            return Err(Error::bad_image(
                name,
                format!(
                    "VMDK descriptor at sector {d0} ({dn} sectors) is missing or not before the grains (sector {}): the image is corrupt",
                    h.grain_offset
                ),
            ));
        }
        s.skip_to(r, d0 * SECTOR)?;
        let len = (dn * SECTOR).min(descriptor::MAX_LEN as u64) as usize;
        let mut raw = vec![0u8; len];
        s.read_exact(r, &mut raw, "its descriptor")?;
        let d = Descriptor::parse(&raw, name)?;
        if let Some(t) = d
            .create_type
            .as_deref()
            .filter(|t| !ONE_FILE_TYPES.contains(t))
        {
            return Err(Error::bad_image(
                name,
                format!(
                    "VMDK sparse extent declares createType '{}': only monolithicSparse and streamOptimized are one self-contained file (Glance refuses the others): convert it with qemu-img first",
                    escape(t)
                ),
            ));
        }
        if let Some(p) = &d.parent {
            return Err(Error::bad_image(
                name,
                format!(
                    "names parent (backing file) '{}': refused, an image read from a stream can never follow one",
                    escape(p)
                ),
            ));
        }
        if h.gd_offset != super::header::GD_AT_END {
            s.listed = Some(s.read_front_tables(r, &h)?);
        }
        s.skip_to(r, h.grain_offset * SECTOR)?;
        s.header = h;
        Ok(VmdkStream { reader, walk: s })
    }

    /// The virtual size in bytes.
    pub fn virtual_size(&self) -> u64 {
        self.walk.header.size()
    }

    /// The checked header.
    pub fn header(&self) -> &SparseHeader {
        &self.walk.header
    }

    /// The name errors use.
    pub fn name(&self) -> &str {
        &self.walk.name
    }

    /// The walk and the reader it reads the rest of the stream from.
    pub fn into_parts(self) -> (Walk, Box<dyn Read + Send>) {
        (self.walk, self.reader)
    }

    /// Walks the rest of the stream from its own reader: see [`Walk::run`].
    pub fn run(
        self,
        alloc: &mut dyn FnMut(usize) -> Vec<u8>,
        on_event: &mut dyn FnMut(Event) -> Result<()>,
    ) -> Result<StreamStats> {
        let (walk, mut reader) = self.into_parts();
        walk.run(&mut reader, alloc, on_event)
    }
}

impl Walk {
    /// The grain size in bytes.
    pub fn grain_bytes(&self) -> u64 {
        self.header.grain_bytes()
    }

    /// Walks the rest of the stream, read from `r`, handing every event to `on_event` in
    /// guest order; `alloc(n)` gives the buffer (of length `n`) a grain's compressed bytes
    /// are read into.
    pub fn run(
        mut self,
        r: &mut dyn Read,
        alloc: &mut dyn FnMut(usize) -> Vec<u8>,
        on_event: &mut dyn FnMut(Event) -> Result<()>,
    ) -> Result<StreamStats> {
        let h = self.header.clone();
        let (size, gb) = (h.size(), h.grain_bytes());
        let mut covered = 0u64;
        let mut grains = 0u64;
        let mut footer_seen = false;
        let mut next_listed = 0usize;
        loop {
            let at = self.pos;
            let mut m = [0u8; 12];
            let n = crate::disk::read_full(r, &mut m)
                .map_err(|e| Error::io(format!("read {}", self.name), e))?;
            self.pos += n as u64;
            if n == 0 {
                // The end of the stream where a marker would start: whole only if nothing
                // listed is missing (checked below); qemu-img writes no end-of-stream marker.
                break;
            }
            if n < m.len() {
                return Err(self.bad(format!(
                    "the stream ended after {} bytes, inside a marker: the image is truncated",
                    self.pos
                )));
            }
            let val = u64::from_le_bytes(m[..8].try_into().expect("8 bytes"));
            let len = u32::from_le_bytes(m[8..12].try_into().expect("4 bytes")) as u64;
            if len != 0 {
                let guest = self.grain_guest(val, covered, at)?;
                if let Some(listed) = &self.listed {
                    let g = val / h.grain_sectors;
                    if listed.get(next_listed) != Some(&g) {
                        return Err(self.bad(format!(
                            "grain for guest sector {val} at offset {at:#x} is not the next one its grain tables list: the image is corrupt"
                        )));
                    }
                    next_listed += 1;
                }
                if len > 2 * gb {
                    return Err(self.bad(format!(
                        "grain marker at offset {at:#x} claims {len} compressed bytes, more than two grains: the image is corrupt"
                    )));
                }
                let mut payload = alloc(len as usize);
                payload.truncate(len as usize);
                self.read_exact(r, &mut payload, "a grain")?;
                self.skip_to(r, self.pos.div_ceil(SECTOR) * SECTOR)?;
                if guest > covered {
                    on_event(Event::Zero {
                        guest: covered,
                        len: guest - covered,
                    })?;
                }
                let glen = gb.min(size - guest);
                on_event(Event::Grain {
                    guest,
                    payload,
                    len: glen as usize,
                })?;
                covered = guest + glen;
                grains += 1;
                continue;
            }
            let mut rest = [0u8; SECTOR as usize - 12];
            self.read_exact(r, &mut rest, "a marker")?;
            let kind = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
            match kind {
                MARKER_EOS => break,
                MARKER_GT | MARKER_GD => {
                    if val > MAX_META_SECTORS {
                        return Err(self.bad(format!(
                            "metadata marker at offset {at:#x} announces {val} sectors, more than any table: the image is corrupt"
                        )));
                    }
                    self.skip_to(r, self.pos + val * SECTOR)?;
                }
                MARKER_FOOTER => {
                    if val != 1 || footer_seen {
                        return Err(self.bad(format!(
                            "footer marker at offset {at:#x} is invalid or repeated: the image is corrupt"
                        )));
                    }
                    let mut f = [0u8; SECTOR as usize];
                    self.read_exact(r, &mut f, "its footer")?;
                    h.check_stream_footer(&f, &self.name)?;
                    footer_seen = true;
                }
                other => {
                    return Err(self.bad(format!(
                        "marker of unknown type {other} at offset {at:#x}: the image is corrupt"
                    )))
                }
            }
        }
        if let Some(missing) = self.listed.as_ref().and_then(|l| l.get(next_listed)) {
            return Err(self.bad(format!(
                "the stream ended after {} bytes, before the grain for guest sector {} that its grain tables list: the image is truncated",
                self.pos,
                missing * h.grain_sectors
            )));
        }
        if h.gd_offset == super::header::GD_AT_END && !footer_seen {
            return Err(self.bad(
                "the header defers to a footer, but the stream ended without one: the image is truncated or corrupt".into(),
            ));
        }
        if covered < size {
            on_event(Event::Zero {
                guest: covered,
                len: size - covered,
            })?;
        }
        // What follows the end-of-stream marker is not part of the image; read it so the
        // writer of the pipe is not cut off.
        let drained = std::io::copy(r, &mut std::io::sink())
            .map_err(|e| Error::io(format!("read {}", self.name), e))?;
        Ok(StreamStats {
            bytes_read: self.pos + drained,
            grains,
        })
    }

    /// Reads the metadata between the descriptor and the grains, where qemu-img puts the grain
    /// directory and tables, and returns the grains they list (guest grain indices, in order).
    /// The directory and every table must lie there: a stream cannot go back for them.
    fn read_front_tables(&mut self, r: &mut dyn Read, h: &SparseHeader) -> Result<Vec<u64>> {
        let name = self.name.clone();
        let bad = |why: String| Error::bad_image(&name, why);
        let (start, end) = (self.pos, h.grain_offset * SECTOR);
        let gd = h.gd_offset.saturating_mul(SECTOR);
        let gd_len = h.gd_entries * 4;
        let table_len = h.gtes_per_gt * 4;
        let front_max = super::tables::MAX_TABLE_BYTES + super::header::MAX_GD_ENTRIES * 4;
        if gd < start || gd.saturating_add(gd_len) > end || end - start > front_max {
            return Err(bad(format!(
                "VMDK grain directory at sector {} is not between the descriptor and the grains (sector {}): a stream cannot reach it, save it to a file first",
                h.gd_offset, h.grain_offset
            )));
        }
        let mut front = vec![0u8; (end - start) as usize];
        self.read_exact(r, &mut front, "the grain tables")?;
        let at = |off: u64, len: u64| -> Option<&[u8]> {
            let o = off.checked_sub(start)? as usize;
            front.get(o..o.checked_add(len as usize)?)
        };
        let dir = at(gd, gd_len)
            .ok_or_else(|| bad("VMDK grain directory is cut short: the image is corrupt".into()))?;
        let grains = h.capacity.div_ceil(h.grain_sectors);
        let mut listed = Vec::new();
        for (d, w) in dir.chunks_exact(4).enumerate() {
            let sector = u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as u64;
            if sector == 0 {
                continue;
            }
            let table = at(sector * SECTOR, table_len).ok_or_else(|| {
                bad(format!(
                    "VMDK grain table {d} at sector {sector} is not between the descriptor and the grains: a stream cannot reach it, save it to a file first"
                ))
            })?;
            for (j, e) in table.chunks_exact(4).enumerate() {
                let g = d as u64 * h.gtes_per_gt + j as u64;
                let v = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
                if g < grains && v != 0 && !(v == 1 && h.zero_grain) {
                    listed.push(g);
                }
            }
        }
        Ok(listed)
    }

    /// The guest offset of a grain whose marker names sector `lba`, checked: on a grain
    /// boundary, inside the disk, at or after `covered` (guest order, nothing repeated).
    fn grain_guest(&self, lba: u64, covered: u64, at: u64) -> Result<u64> {
        let h = &self.header;
        if !lba.is_multiple_of(h.grain_sectors) || lba >= h.capacity {
            return Err(self.bad(format!(
                "grain marker at offset {at:#x} names guest sector {lba}, not the start of a grain inside the disk ({} sectors): the image is corrupt",
                h.capacity
            )));
        }
        let guest = lba * SECTOR;
        if guest < covered {
            return Err(self.bad(format!(
                "grain for guest sector {lba} at offset {at:#x} comes after the grains up to byte {covered}: repeated or out of order, the image is corrupt (or not written as a stream: save it to a file first)"
            )));
        }
        Ok(guest)
    }

    fn bad(&self, why: String) -> Error {
        Error::bad_image(&self.name, why)
    }

    fn read_exact(&mut self, r: &mut dyn Read, buf: &mut [u8], what: &str) -> Result<()> {
        let n = crate::disk::read_full(r, buf)
            .map_err(|e| Error::io(format!("read {}", self.name), e))?;
        self.pos += n as u64;
        if n < buf.len() {
            return Err(self.bad(format!(
                "the stream ended after {} bytes, inside {what}: the image is truncated",
                self.pos
            )));
        }
        Ok(())
    }

    /// Reads and drops bytes up to stream offset `to` (no-op when already there).
    fn skip_to(&mut self, r: &mut dyn Read, to: u64) -> Result<()> {
        if to <= self.pos {
            return Ok(());
        }
        let want = to - self.pos;
        let n = std::io::copy(&mut r.take(want), &mut std::io::sink())
            .map_err(|e| Error::io(format!("read {}", self.name), e))?;
        self.pos += n;
        if n < want {
            return Err(self.bad(format!(
                "the stream ended after {} bytes, before offset {to}: the image is truncated",
                self.pos
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::qemu::{qemu_io, reference_bytes, run_in};
    use crate::testutil::vmdk::vmware_stream;

    /// Decodes `bytes` as a stream into the guest bytes, checking the events cover the disk.
    fn decode(bytes: Vec<u8>) -> Result<Vec<u8>> {
        let s = VmdkStream::open(Box::new(std::io::Cursor::new(bytes)), "t")?;
        let mut out = vec![0xeeu8; s.virtual_size() as usize];
        let gb = s.header().grain_bytes() as usize;
        let mut at = 0u64;
        let mut grain = vec![0u8; gb];
        s.run(&mut |n| vec![0u8; n], &mut |ev| {
            match ev {
                Event::Zero { guest, len } => {
                    assert_eq!(guest, at);
                    out[guest as usize..(guest + len) as usize].fill(0);
                    at += len;
                }
                Event::Grain {
                    guest,
                    payload,
                    len,
                } => {
                    assert_eq!(guest, at);
                    super::super::grain::inflate(&payload, &mut grain, len)
                        .map_err(|w| Error::bad_image("t", w))?;
                    out[guest as usize..guest as usize + len].copy_from_slice(&grain[..len]);
                    at += len as u64;
                }
            }
            Ok(())
        })?;
        assert_eq!(at, out.len() as u64);
        Ok(out)
    }

    #[test]
    fn qemu_and_vmware_streams_decode_as_qemu_reads_them() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        run_in(
            Some(dir),
            "qemu-img",
            &["create", "-q", "-f", "vmdk", "s.vmdk", "2049k"],
        );
        let s = dir.join("s.vmdk");
        qemu_io(
            &s,
            "vmdk",
            &[
                "write -P 1 0 100k",
                "write -P 2 1M 4k",
                "write -P 3 2040k 9k",
            ],
        );
        run_in(
            Some(dir),
            "qemu-img",
            &[
                "convert",
                "-O",
                "vmdk",
                "-o",
                "subformat=streamOptimized",
                "s.vmdk",
                "so.vmdk",
            ],
        );
        let want = reference_bytes(&s);
        assert!(decode(std::fs::read(dir.join("so.vmdk")).unwrap()).unwrap() == want);
        assert!(decode(vmware_stream(&want)).unwrap() == want);
        // qemu-img writes no end-of-stream marker: a stream cut at a grain boundary is told
        // from a whole one by the grain tables at its front.
        let so = std::fs::read(dir.join("so.vmdk")).unwrap();
        let g0 = u64::from_le_bytes(so[64..72].try_into().unwrap()) as usize * 512;
        let z = u32::from_le_bytes(so[g0 + 8..g0 + 12].try_into().unwrap()) as usize;
        let cut = (g0 + 12 + z).div_ceil(512) * 512;
        let e = decode(so[..cut].to_vec()).unwrap_err().to_string();
        assert!(e.contains("that its grain tables list"), "{e}");
        // A monolithicSparse stream is refused (its grains do not describe themselves).
        let e = decode(std::fs::read(&s).unwrap()).unwrap_err().to_string();
        assert!(e.contains("save it to a file first"), "{e}");
    }

    #[test]
    fn lying_and_truncated_streams_are_refused() {
        let want: Vec<u8> = (0..3 << 16).map(|i: u32| (i / 1000) as u8).collect();
        let good = vmware_stream(&want);
        let g0 = 128 * 512;
        type Mutation = Box<dyn Fn(&mut Vec<u8>)>;
        let cases: Vec<(&str, Mutation, &str)> = vec![
            ("cut", Box::new(|b| b.truncate(b.len() - 700)), "truncated"),
            (
                "cut-grain",
                Box::new(move |b| b.truncate(g0 + 100)),
                "inside a grain",
            ),
            (
                "no-footer",
                Box::new(|b| {
                    let n = b.len();
                    b.copy_within(n - 512.., n - 1536);
                    b.truncate(n - 1024)
                }),
                "without one",
            ),
            (
                "lba-odd",
                Box::new(move |b| b[g0] = 1),
                "not the start of a grain",
            ),
            (
                "lba-past",
                Box::new(move |b| b[g0 + 3] = 1),
                "inside the disk",
            ),
            (
                "huge",
                Box::new(move |b| b[g0 + 8..g0 + 12].copy_from_slice(&(1u32 << 20).to_le_bytes())),
                "more than two grains",
            ),
            (
                "repeat",
                Box::new(move |b| {
                    // The second grain's marker names the first grain's sector.
                    let z = u32::from_le_bytes(b[g0 + 8..g0 + 12].try_into().unwrap()) as usize;
                    let second = (g0 + 12 + z).div_ceil(512) * 512;
                    b[second..second + 8].fill(0);
                }),
                "repeated or out of order",
            ),
            (
                "bad-type",
                Box::new(|b| {
                    let n = b.len();
                    b[n - 512 + 12] = 9
                }),
                "unknown type",
            ),
            (
                "footer-lies",
                Box::new(|b| {
                    let n = b.len();
                    b[n - 1024 + 12] ^= 1
                }),
                "another disk",
            ),
            (
                "vmfs",
                Box::new(|b| {
                    b[512..512 * 21].fill(0);
                    b[512..540].copy_from_slice(b"version=1\ncreateType=\"vmfs\"\n")
                }),
                "createType 'vmfs'",
            ),
            (
                "parent",
                Box::new(|b| {
                    b[512..512 * 21].fill(0);
                    b[512..544].copy_from_slice(b"parentFileNameHint=\"/etc/passwd\"")
                }),
                "never follow",
            ),
        ];
        for (name, mutate, needle) in cases {
            let mut b = good.clone();
            mutate(&mut b);
            let e = decode(b)
                .err()
                .unwrap_or_else(|| panic!("{name}: accepted"))
                .to_string();
            assert!(e.contains(needle), "{name}: {e}");
        }
    }
}
