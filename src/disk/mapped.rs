//! A disk whose allocation map is taken once, before a copy: what a writer that must lay out
//! its tables before the first data byte (a qcow2 stream) plans from, and what the copy's
//! producer then walks, so the two can never disagree (an image written to during the copy
//! changes neither). It knows nothing of clusters or tables.
use super::source::{push_extent, DiskSource, Extent, ExtentKind};
use crate::error::Result;

/// Bytes of the disk asked for in one call while taking the map: bounds what one call of a
/// fragmented image returns.
const SPAN: u64 = 1 << 30;

/// `src` with its extents taken up front.
pub struct MappedDisk<'a> {
    src: &'a dyn DiskSource,
    /// The extents of the whole disk, in guest order, adjacent ones of a kind merged.
    extents: Vec<Extent>,
}

impl<'a> MappedDisk<'a> {
    /// Takes the allocation map of `src` (RBD: what `diff_iterate` reports; a raw file:
    /// SEEK_DATA/SEEK_HOLE; an image reader: its allocated extents).
    pub fn take(src: &'a dyn DiskSource) -> Result<MappedDisk<'a>> {
        let size = src.virtual_size();
        let mut extents = Vec::new();
        let mut pos = 0u64;
        while pos < size {
            let end = pos.saturating_add(SPAN).min(size);
            for e in src.extents(pos, end - pos)? {
                push_extent(&mut extents, e.offset, e.len, e.kind);
            }
            pos = end;
        }
        Ok(MappedDisk { src, extents })
    }

    /// The ranges that hold data (`(start, end)`, in guest order): the only ones read.
    pub fn data(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.extents
            .iter()
            .filter(|e| e.kind == ExtentKind::Data)
            .map(|e| (e.offset, e.end()))
    }
}

impl DiskSource for MappedDisk<'_> {
    fn virtual_size(&self) -> u64 {
        self.src.virtual_size()
    }

    /// The extents of the map taken, clipped to `[offset, offset + len)`.
    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        let end = offset.saturating_add(len).min(self.virtual_size());
        let from = self.extents.partition_point(|e| e.end() <= offset);
        Ok(self.extents[from..]
            .iter()
            .take_while(|e| e.offset < end)
            .map(|e| {
                let (s, t) = (e.offset.max(offset), e.end().min(end));
                Extent {
                    offset: s,
                    len: t - s,
                    kind: e.kind,
                }
            })
            .collect())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.src.read_at(offset, buf)
    }

    fn format_name(&self) -> &'static str {
        self.src.format_name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::extents_from_data;

    /// A disk of `size` bytes whose data extents are `data`; counts the extent calls.
    struct Fake {
        size: u64,
        data: Vec<(u64, u64)>,
        calls: std::sync::atomic::AtomicUsize,
    }

    impl DiskSource for Fake {
        fn virtual_size(&self) -> u64 {
            self.size
        }
        fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
            self.calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let end = (offset + len).min(self.size);
            Ok(extents_from_data(offset, end, self.data.iter().copied()))
        }
        fn read_at(&self, _: u64, buf: &mut [u8]) -> Result<()> {
            buf.fill(7);
            Ok(())
        }
        fn format_name(&self) -> &'static str {
            "fake"
        }
    }

    #[test]
    fn the_map_is_taken_once_and_served_clipped() {
        let g = 1u64 << 30;
        // Data crossing the 1 GiB span boundary comes back as one extent.
        let src = Fake {
            size: 3 * g,
            data: vec![(100, 50), (g - 10, 20), (2 * g + 5, 1)],
            calls: Default::default(),
        };
        let m = MappedDisk::take(&src).unwrap();
        let calls = src.calls.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(calls, 3);
        assert_eq!(
            m.data().collect::<Vec<_>>(),
            [(100, 150), (g - 10, g + 10), (2 * g + 5, 2 * g + 6)]
        );
        let e = m.extents(120, g).unwrap();
        assert_eq!(
            e[0],
            Extent {
                offset: 120,
                len: 30,
                kind: ExtentKind::Data
            }
        );
        assert_eq!(e[1].kind, ExtentKind::Unallocated);
        assert_eq!(
            e[2],
            Extent {
                offset: g - 10,
                len: 20,
                kind: ExtentKind::Data
            }
        );
        assert_eq!(
            e[3],
            Extent {
                offset: g + 10,
                len: 110,
                kind: ExtentKind::Unallocated
            }
        );
        assert_eq!(e.len(), 4);
        // The source is not asked again.
        m.extents(0, 3 * g).unwrap();
        assert_eq!(src.calls.load(std::sync::atomic::Ordering::Relaxed), calls);
        assert!(m.extents(3 * g, 10).unwrap().is_empty());
    }
}
