//! The `rbd export-diff` stream format (ceph's `doc/dev/rbd-diff.rst`), both versions:
//! a header line, metadata records (from-snapshot `f`, to-snapshot `t`, image size `s`), then
//! data records in offset order (`w` offset, length, bytes; `z` offset, length), then `e`.
//! Version 2 puts a 64-bit length after every tag so readers can skip tags they do not know.
//!
//! rbdkit writes version 1, as `rbd export-diff` does, and reads both. A stream is input from
//! anywhere, so the reader trusts nothing: every length is checked against the declared image
//! size before anything is allocated, data records must come in increasing, non-overlapping
//! offset order (as `rbd export-diff` writes them: the copy engine consumes a diff in one pass),
//! and a stream that ends before its `e` record is refused.
use crate::error::{Error, Result};
use std::io::{Read, Write};

/// The header of a version-1 stream.
pub const HEADER_V1: &[u8] = b"rbd diff v1\n";
/// The header of a version-2 stream.
pub const HEADER_V2: &[u8] = b"rbd diff v2\n";

/// Longest snapshot name accepted (librbd's limit is far below this).
const MAX_NAME: u64 = 4096;
/// Longest unknown version-2 metadata record skipped.
const MAX_SKIP: u64 = 1 << 20;

/// What a diff stream says before its data.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DiffHeader {
    /// 1 or 2.
    pub version: u8,
    /// The snapshot the diff starts from (`None`: from an empty image).
    pub from_snap: Option<String>,
    /// The snapshot the diff ends at (`None`: the image head), which `import-diff` creates.
    pub to_snap: Option<String>,
    /// The image size at the end.
    pub size: u64,
}

/// A data record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiffRecord {
    /// `len` bytes at `offset` follow in the stream (read them with [`DiffReader::read_data`]).
    Write {
        /// Image offset.
        offset: u64,
        /// Bytes.
        len: u64,
    },
    /// `len` bytes at `offset` read as zeros.
    Zero {
        /// Image offset.
        offset: u64,
        /// Bytes.
        len: u64,
    },
}

/// Writes a version-1 stream.
pub struct DiffWriter<W: Write> {
    out: W,
    /// End of the last data record: records must come in order.
    pos: u64,
    size: u64,
    /// Bytes written so far.
    pub bytes: u64,
}

impl<W: Write> DiffWriter<W> {
    /// Writes the header and metadata records.
    pub fn new(mut out: W, h: &DiffHeader) -> Result<Self> {
        let mut head = HEADER_V1.to_vec();
        for (tag, name) in [(b'f', &h.from_snap), (b't', &h.to_snap)] {
            if let Some(n) = name {
                head.push(tag);
                head.extend_from_slice(&(n.len() as u32).to_le_bytes());
                head.extend_from_slice(n.as_bytes());
            }
        }
        head.push(b's');
        head.extend_from_slice(&h.size.to_le_bytes());
        out.write_all(&head).map_err(write_err)?;
        Ok(DiffWriter {
            out,
            pos: 0,
            size: h.size,
            bytes: head.len() as u64,
        })
    }

    fn check(&mut self, offset: u64, len: u64) -> Result<()> {
        if offset < self.pos || offset.checked_add(len).is_none_or(|e| e > self.size) {
            return Err(Error::Other(format!(
                "export-diff: record at {offset}+{len} out of order or past the size {}: this is a bug in rbdkit, please report it",
                self.size
            )));
        }
        self.pos = offset + len;
        Ok(())
    }

    /// A `w` record with its bytes.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.check(offset, data.len() as u64)?;
        let mut rec = [0u8; 17];
        rec[0] = b'w';
        rec[1..9].copy_from_slice(&offset.to_le_bytes());
        rec[9..17].copy_from_slice(&(data.len() as u64).to_le_bytes());
        self.out.write_all(&rec).map_err(write_err)?;
        self.out.write_all(data).map_err(write_err)?;
        self.bytes += 17 + data.len() as u64;
        Ok(())
    }

    /// A `z` record.
    pub fn zero(&mut self, offset: u64, len: u64) -> Result<()> {
        self.check(offset, len)?;
        let mut rec = [0u8; 17];
        rec[0] = b'z';
        rec[1..9].copy_from_slice(&offset.to_le_bytes());
        rec[9..17].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&rec).map_err(write_err)?;
        self.bytes += 17;
        Ok(())
    }

    /// The `e` record, and a flush.
    pub fn finish(&mut self) -> Result<()> {
        self.out.write_all(b"e").map_err(write_err)?;
        self.out.flush().map_err(write_err)?;
        self.bytes += 1;
        Ok(())
    }
}

fn write_err(e: std::io::Error) -> Error {
    Error::io("write the export-diff stream", e)
}

/// Reads a stream, checking it as it goes.
pub struct DiffReader<R: Read> {
    input: R,
    what: String,
    /// The header, once read.
    pub header: DiffHeader,
    /// End of the last data record.
    pos: u64,
    /// Bytes of the current `w` record's data not yet read.
    pending: u64,
    /// Bytes read so far.
    pub bytes: u64,
    /// A data tag read while looking for the end of the metadata.
    pushback: Option<u8>,
    ended: bool,
}

impl<R: Read> DiffReader<R> {
    /// Reads and checks the header and metadata of the stream `what` (a path or `-`).
    pub fn new(input: R, what: &str) -> Result<Self> {
        let mut r = DiffReader {
            input,
            what: what.to_string(),
            header: DiffHeader::default(),
            pos: 0,
            pending: 0,
            bytes: 0,
            pushback: None,
            ended: false,
        };
        let mut magic = [0u8; 12];
        r.fill(&mut magic, "its header")?;
        r.header.version = match &magic[..] {
            HEADER_V1 => 1,
            HEADER_V2 => 2,
            _ => return Err(r.bad("it does not start with `rbd diff v1` or `rbd diff v2`: not an rbd export-diff stream")),
        };
        let mut size = None;
        loop {
            let tag = r.u8("a record tag")?;
            let reclen = if r.header.version == 2 && matches!(tag, b'f' | b't' | b's') {
                Some(r.u64("a record length")?)
            } else {
                None
            };
            match tag {
                b'f' | b't' => {
                    let n = r.u32("a snapshot name length")? as u64;
                    if n > MAX_NAME || reclen.is_some_and(|l| l != 4 + n) {
                        return Err(r.bad(&format!(
                            "a snapshot name of {n} bytes (record length {reclen:?})"
                        )));
                    }
                    let mut name = vec![0u8; n as usize];
                    r.fill(&mut name, "a snapshot name")?;
                    let name = String::from_utf8(name)
                        .map_err(|_| r.bad("a snapshot name that is not UTF-8"))?;
                    if name.is_empty() || name.contains('\0') {
                        return Err(r.bad("an empty snapshot name or one with NUL"));
                    }
                    let slot = if tag == b'f' {
                        &mut r.header.from_snap
                    } else {
                        &mut r.header.to_snap
                    };
                    if slot.replace(name).is_some() {
                        return Err(r.bad(&format!("two `{}` records", tag as char)));
                    }
                }
                b's' => {
                    if reclen.is_some_and(|l| l != 8) {
                        return Err(r.bad("a size record of the wrong length"));
                    }
                    if size.replace(r.u64("the image size")?).is_some() {
                        return Err(r.bad("two size records"));
                    }
                }
                b'w' | b'z' | b'e' => {
                    let Some(s) = size else {
                        return Err(r.bad("no image size record before its data"));
                    };
                    r.header.size = s;
                    r.pushback = Some(tag);
                    return Ok(r);
                }
                other if r.header.version == 2 => {
                    let l = r.u64("a record length")?;
                    if l > MAX_SKIP {
                        return Err(r.bad(&format!(
                            "an unknown record `{}` of {l} bytes",
                            other as char
                        )));
                    }
                    let mut skip = vec![0u8; l as usize];
                    r.fill(&mut skip, "an unknown record")?;
                }
                other => {
                    return Err(r.bad(&format!(
                        "an unknown record tag 0x{other:02x} at byte {}",
                        r.bytes - 1
                    )))
                }
            }
        }
    }
}

impl<R: Read> DiffReader<R> {
    /// The next data record, `None` after `e`. A `w` record's data must be read (all of it,
    /// with [`DiffReader::read_data`]) before the next record.
    pub fn next_record(&mut self) -> Result<Option<DiffRecord>> {
        if self.pending > 0 {
            return Err(Error::Other(format!(
                "export-diff {}: a record was not read to its end: this is a bug in rbdkit, please report it",
                self.what
            )));
        }
        if self.ended {
            return Ok(None);
        }
        let tag = match self.pushback.take() {
            Some(t) => t,
            None => self.u8("a record tag (no end record)")?,
        };
        if tag == b'e' {
            self.ended = true;
            return Ok(None);
        }
        if !matches!(tag, b'w' | b'z') {
            if self.header.version == 2 && !matches!(tag, b'f' | b't' | b's') {
                let l = self.u64("a record length")?;
                if l > MAX_SKIP {
                    return Err(
                        self.bad(&format!("an unknown record `{}` of {l} bytes", tag as char))
                    );
                }
                let mut skip = vec![0u8; l as usize];
                self.fill(&mut skip, "an unknown record")?;
                return self.next_record();
            }
            return Err(self.bad(&format!(
                "a record tag 0x{tag:02x} among the data records at byte {}",
                self.bytes - 1
            )));
        }
        let reclen = if self.header.version == 2 {
            Some(self.u64("a record length")?)
        } else {
            None
        };
        let offset = self.u64("a record offset")?;
        let len = self.u64("a record length")?;
        let want = if tag == b'w' {
            len.checked_add(16)
        } else {
            Some(16)
        };
        if reclen.is_some_and(|l| Some(l) != want) {
            return Err(self.bad(&format!("a record at {offset} whose lengths disagree")));
        }
        let end = offset.checked_add(len);
        if end.is_none_or(|e| e > self.header.size) {
            return Err(self.bad(&format!(
                "a record at {offset} of {len} bytes past the image size {}",
                self.header.size
            )));
        }
        if offset < self.pos {
            return Err(self.bad(&format!(
                "a record at {offset} before the end of the previous one ({}): records out of order or overlapping",
                self.pos
            )));
        }
        self.pos = offset + len;
        Ok(Some(if tag == b'w' {
            self.pending = len;
            DiffRecord::Write { offset, len }
        } else {
            DiffRecord::Zero { offset, len }
        }))
    }

    /// Reads the next `buf.len()` bytes of the current `w` record's data.
    pub fn read_data(&mut self, buf: &mut [u8]) -> Result<()> {
        if buf.len() as u64 > self.pending {
            return Err(Error::Other(format!(
                "export-diff {}: read past a record: this is a bug in rbdkit, please report it",
                self.what
            )));
        }
        self.fill(buf, "a data record's bytes")?;
        self.pending -= buf.len() as u64;
        Ok(())
    }

    fn bad(&self, why: &str) -> Error {
        Error::InvalidInput(format!(
            "export-diff stream {}: {why}; refusing it (nothing after this point was applied)",
            crate::text::escape(&self.what)
        ))
    }

    fn fill(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        let mut got = 0;
        while got < buf.len() {
            match self.input.read(&mut buf[got..]) {
                Ok(0) => {
                    return Err(self.bad(&format!(
                        "truncated: it ends at byte {} inside {what}",
                        self.bytes + got as u64
                    )))
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(Error::io(
                        format!("read the export-diff stream {}", self.what),
                        e,
                    ))
                }
            }
        }
        self.bytes += got as u64;
        Ok(())
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        let mut b = [0u8; 1];
        self.fill(&mut b, what)?;
        Ok(b[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        let mut b = [0u8; 4];
        self.fill(&mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        let mut b = [0u8; 8];
        self.fill(&mut b, what)?;
        Ok(u64::from_le_bytes(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(from: Option<&str>) -> Vec<u8> {
        let mut out = Vec::new();
        let h = DiffHeader {
            version: 1,
            from_snap: from.map(str::to_string),
            to_snap: Some("b".into()),
            size: 1 << 20,
        };
        let mut w = DiffWriter::new(&mut out, &h).unwrap();
        w.write(4096, &[7u8; 100]).unwrap();
        w.zero(8192, 4096).unwrap();
        w.write((1 << 20) - 1, &[9]).unwrap();
        w.finish().unwrap();
        out
    }

    type Records = Vec<(DiffRecord, Vec<u8>)>;

    fn read_all(bytes: &[u8]) -> Result<(DiffHeader, Records)> {
        let mut r = DiffReader::new(bytes, "t")?;
        let mut recs = Vec::new();
        while let Some(rec) = r.next_record()? {
            let mut data = Vec::new();
            if let DiffRecord::Write { len, .. } = rec {
                data = vec![0u8; len as usize];
                r.read_data(&mut data)?;
            }
            recs.push((rec, data));
        }
        Ok((r.header.clone(), recs))
    }

    #[test]
    fn round_trip_v1() {
        let bytes = sample(Some("a"));
        assert!(bytes.starts_with(b"rbd diff v1\nf\x01\0\0\0at\x01\0\0\0bs"));
        let (h, recs) = read_all(&bytes).unwrap();
        assert_eq!(h.from_snap.as_deref(), Some("a"));
        assert_eq!(h.to_snap.as_deref(), Some("b"));
        assert_eq!(h.size, 1 << 20);
        assert_eq!(recs.len(), 3);
        assert_eq!(
            recs[0].0,
            DiffRecord::Write {
                offset: 4096,
                len: 100
            }
        );
        assert_eq!(recs[0].1, vec![7u8; 100]);
        assert_eq!(
            recs[1].0,
            DiffRecord::Zero {
                offset: 8192,
                len: 4096
            }
        );
    }

    #[test]
    fn reads_v2_and_skips_unknown_tags() {
        let mut b = HEADER_V2.to_vec();
        b.push(b't');
        b.extend_from_slice(&5u64.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.push(b'x');
        b.push(b's');
        b.extend_from_slice(&8u64.to_le_bytes());
        b.extend_from_slice(&65536u64.to_le_bytes());
        b.push(b'p');
        b.extend_from_slice(&1u64.to_le_bytes());
        b.push(1);
        b.push(b'w');
        b.extend_from_slice(&19u64.to_le_bytes());
        b.extend_from_slice(&10u64.to_le_bytes());
        b.extend_from_slice(&3u64.to_le_bytes());
        b.extend_from_slice(b"abc");
        b.push(b'z');
        b.extend_from_slice(&16u64.to_le_bytes());
        b.extend_from_slice(&100u64.to_le_bytes());
        b.extend_from_slice(&50u64.to_le_bytes());
        b.push(b'e');
        let (h, recs) = read_all(&b).unwrap();
        assert_eq!(
            (h.version, h.to_snap.as_deref(), h.size),
            (2, Some("x"), 65536)
        );
        assert_eq!(recs[0].1, b"abc");
        assert_eq!(
            recs[1].0,
            DiffRecord::Zero {
                offset: 100,
                len: 50
            }
        );
    }

    #[test]
    fn refuses_hostile_and_truncated_streams() {
        let good = sample(None);
        // Every proper prefix is truncated.
        for cut in 0..good.len() {
            let e = read_all(&good[..cut]).unwrap_err().to_string();
            assert!(
                e.contains("truncated") || e.contains("not an rbd"),
                "{cut}: {e}"
            );
            assert!(!e.contains('\n'));
        }
        let mut past = good.clone();
        // The last w record's offset (1 MiB - 1) + 2 bytes: past the size.
        let at = past.len() - 1 - 1 - 16;
        past[at + 9..at + 17].copy_from_slice(&2u64.to_le_bytes());
        assert!(read_all(&past)
            .unwrap_err()
            .to_string()
            .contains("past the image size"));
        let mut huge = good.clone();
        huge[at + 9..at + 17].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(read_all(&huge)
            .unwrap_err()
            .to_string()
            .contains("past the image size"));
        let mut order = Vec::new();
        let h = DiffHeader {
            version: 1,
            size: 1 << 20,
            ..Default::default()
        };
        let mut w = DiffWriter::new(&mut order, &h).unwrap();
        w.write(8192, b"x").unwrap();
        order.push(b'z');
        order.extend_from_slice(&0u64.to_le_bytes());
        order.extend_from_slice(&1u64.to_le_bytes());
        order.push(b'e');
        assert!(read_all(&order)
            .unwrap_err()
            .to_string()
            .contains("out of order"));
        let mut tag = good.clone();
        let n = tag.len();
        tag[n - 1] = b'q';
        assert!(read_all(&tag).unwrap_err().to_string().contains("tag 0x71"));
        assert!(read_all(b"GIF89a......")
            .unwrap_err()
            .to_string()
            .contains("not an rbd"));
        let mut nosize = HEADER_V1.to_vec();
        nosize.push(b'e');
        assert!(read_all(&nosize)
            .unwrap_err()
            .to_string()
            .contains("no image size"));
        let mut name = HEADER_V1.to_vec();
        name.push(b'f');
        name.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(read_all(&name)
            .unwrap_err()
            .to_string()
            .contains("snapshot name of"));
    }
}
