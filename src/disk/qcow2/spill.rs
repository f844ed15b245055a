//! The spill file of a qcow2 stream: bytes that arrived before anything said where they belong,
//! kept at their host offset in an unnamed temporary file (in `TMPDIR`) until a table read
//! later claims them. Sparse: all-zero 4 KiB blocks are never written, and holes and anything
//! past the end read back as zeros, which is what the skipped bytes were. The file has no name,
//! so the kernel frees it when the process ends, however it ends.
use crate::error::{Error, Result};
use std::fs::File;
use std::os::unix::fs::FileExt;

/// Zero detection granularity of the spill (aligned to host offsets).
const BLOCK: u64 = 4096;

/// A sparse scratch copy of parts of the stream, addressed by host (stream) offset.
#[derive(Default)]
pub struct Spill {
    /// Created on the first non-zero write.
    file: Option<File>,
    /// Bytes written so far.
    written: u64,
}

fn dir() -> String {
    std::env::temp_dir().display().to_string()
}

impl Spill {
    /// Bytes written to the file so far (zero blocks excluded).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Keeps `data`, which arrived at stream offset `off`; all-zero blocks are skipped.
    pub fn write(&mut self, off: u64, data: &[u8]) -> Result<()> {
        let mut at = 0usize;
        while at < data.len() {
            // Extend a run of non-zero blocks (block boundaries aligned to `off + at`'s grid).
            let block_end = |p: usize| {
                let abs = off + p as u64;
                (p as u64 + (BLOCK - abs % BLOCK)).min(data.len() as u64) as usize
            };
            let end = block_end(at);
            if crate::zero::is_zero(&data[at..end]) {
                at = end;
                continue;
            }
            let mut run_end = end;
            while run_end < data.len() {
                let next = block_end(run_end);
                if crate::zero::is_zero(&data[run_end..next]) {
                    break;
                }
                run_end = next;
            }
            self.write_raw(off + at as u64, &data[at..run_end])?;
            at = run_end;
        }
        Ok(())
    }

    fn write_raw(&mut self, off: u64, data: &[u8]) -> Result<()> {
        let hint = "qcow2 stream data that arrived before its tables; set TMPDIR to a filesystem with room, or import from a file path";
        if self.file.is_none() {
            let f = tempfile::tempfile()
                .map_err(|e| Error::io(format!("create a spill file in {} ({hint})", dir()), e))?;
            self.file = Some(f);
        }
        if let Some(f) = &self.file {
            f.write_all_at(data, off)
                .map_err(|e| Error::io(format!("write the spill file in {} ({hint})", dir()), e))?;
        }
        self.written += data.len() as u64;
        Ok(())
    }

    /// Fills `buf` with what was kept from stream offset `off`: zeros where nothing was.
    pub fn read(&self, off: u64, buf: &mut [u8]) -> Result<()> {
        let Some(f) = &self.file else {
            buf.fill(0);
            return Ok(());
        };
        let mut n = 0usize;
        while n < buf.len() {
            match f.read_at(&mut buf[n..], off + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(format!("read the spill file in {}", dir()), e)),
            }
        }
        buf[n..].fill(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_blocks_become_holes_and_read_back_as_zeros() {
        let mut s = Spill::default();
        let mut buf = [7u8; 100];
        s.read(5, &mut buf).unwrap();
        assert_eq!(buf, [0u8; 100]);
        let mut data = vec![0u8; 3 * 4096];
        data[100] = 1; // block [1000, 4096) of the grid starting at 1000
        data[2 * 4096 + 7] = 2;
        s.write(1000, &data).unwrap();
        // Blocks are cut on the absolute 4 KiB grid: [1000, 4096) and [8192, 12288), [12288, 13288).
        assert_eq!(s.written(), (4096 - 1000) + 4096);
        let mut back = vec![9u8; data.len() + 50];
        s.read(1000, &mut back).unwrap();
        assert_eq!(&back[..data.len()], &data[..]);
        assert!(back[data.len()..].iter().all(|&b| b == 0));
    }
}
