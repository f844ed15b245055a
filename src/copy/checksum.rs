//! The checksum of a whole disk: the copy engine run into a sink that keeps nothing, so
//! reading, zero detection and `sha256-blocks` hashing all happen on the decode threads, in
//! parallel. Used to read an image back (`--verify`) and by `rbdkit checksum`.
use super::{copy_disk, ConcurrentWrite, Control, CopyOptions, PoolBuf, Sink};
use crate::disk::DiskSource;
use crate::error::{Error, Result};
use std::sync::Arc;

/// A sink that drops what it is given.
struct Discard;

impl Sink for Discard {
    fn ensure_size(&mut self, _size: u64) -> Result<()> {
        Ok(())
    }

    fn write(&mut self, _offset: u64, _data: PoolBuf) -> Result<()> {
        Ok(())
    }

    fn finish(&mut self, _size: u64) -> Result<()> {
        Ok(())
    }

    /// "Written" on the decode threads, so no chunk's data is copied for the consumer.
    fn concurrent_writer(&self) -> Option<Arc<dyn ConcurrentWrite>> {
        Some(Arc::new(Discard))
    }
}

impl ConcurrentWrite for Discard {
    fn write_at(&self, _offset: u64, _data: &[u8]) -> Result<()> {
        Ok(())
    }
}

/// The `opts.checksum` checksum of `src`'s virtual disk, read as a copy with `opts` would read
/// it (`opts.threads` reads in flight).
pub fn checksum_disk(src: &dyn DiskSource, opts: &CopyOptions, ctl: &Control) -> Result<String> {
    if opts.checksum.is_none() {
        return Err(Error::InvalidInput("checksum: no algorithm given".into()));
    }
    copy_disk(src, &mut Discard, opts, ctl)?
        .checksum
        .ok_or_else(|| Error::Other("checksum: the copy engine returned none".into()))
}

#[cfg(test)]
mod tests {
    use super::super::Checksum;
    use super::*;
    use crate::disk::raw::RawFile;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn checksum_of_a_file_matches_the_definitions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.raw");
        let mut bytes = vec![0u8; (9 << 20) + 123];
        for (i, b) in bytes[(5 << 20) - 7..(5 << 20) + 70_000]
            .iter_mut()
            .enumerate()
        {
            *b = (i % 253) as u8 + 1;
        }
        std::fs::write(&path, &bytes).unwrap();
        let disk = RawFile::open(&path).unwrap();
        let cancel = AtomicBool::new(false);
        let ctl = Control {
            progress: &|_, _| {},
            cancel: &cancel,
        };
        for kind in [Checksum::Sha256Blocks, Checksum::Sha256] {
            let want = super::super::digest::checksum_of(kind, &bytes);
            let opts = CopyOptions {
                checksum: Some(kind),
                threads: 3,
                ..CopyOptions::default()
            };
            assert_eq!(checksum_disk(&disk, &opts, &ctl).unwrap(), want);
        }
    }
}
