//! A disk seen through a list of changes: what an incremental backup sends. Ranges that
//! changed and hold data read from the disk (`Data`), ranges that changed to zeros are `Zero`
//! (the target must zero them), and everything else is `Unchanged` (the target already holds
//! it). The copy engine reads only the `Data` ranges and, into a target that holds the
//! previous state, zeroes the `Zero` ranges and the zero runs inside `Data`.
use super::{DiskSource, Extent, ExtentKind};
use crate::error::Result;

/// A changed range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// Guest offset.
    pub offset: u64,
    /// Bytes (> 0).
    pub len: u64,
    /// True: read it from the disk; false: it reads as zeros now.
    pub data: bool,
}

impl Change {
    fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// The union of two change lists (each sorted, not overlapping): a range in `must_read` is
/// read whatever `changes` says of it (the target's copy of it cannot be trusted: it was
/// written after the state the changes start from), the rest is as `changes` says. Sorted,
/// not overlapping, adjacent ranges of one kind merged.
pub fn union(changes: &[Change], must_read: &[(u64, u64)]) -> Vec<Change> {
    let reads: Vec<Change> = must_read
        .iter()
        .filter(|r| r.1 > 0)
        .map(|&(offset, len)| Change {
            offset,
            len,
            data: true,
        })
        .collect();
    merge(changes, &reads)
}

/// The union of two change lists, each sorted and not overlapping (itself or not): where
/// both list a range, it is data if either says so.
pub fn merge(a: &[Change], b: &[Change]) -> Vec<Change> {
    let mut cuts: Vec<u64> = a
        .iter()
        .chain(b)
        .flat_map(|c| [c.offset, c.end()])
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let (mut i, mut j) = (0, 0);
    let mut out: Vec<Change> = Vec::new();
    for w in cuts.windows(2) {
        let (s, e) = (w[0], w[1]);
        while i < a.len() && a[i].end() <= s {
            i += 1;
        }
        while j < b.len() && b[j].end() <= s {
            j += 1;
        }
        let x = a.get(i).filter(|c| c.offset <= s).map(|c| c.data);
        let y = b.get(j).filter(|c| c.offset <= s).map(|c| c.data);
        let data = match (x, y) {
            (None, None) => continue,
            (x, y) => x.unwrap_or(false) || y.unwrap_or(false),
        };
        match out.last_mut() {
            Some(l) if l.end() == s && l.data == data => l.len += e - s,
            _ => out.push(Change {
                offset: s,
                len: e - s,
                data,
            }),
        }
    }
    out
}

/// `changes` with their ranges that changed to zeros kept only where the target holds data
/// (`allocated`, sorted `(offset, len)`): where it holds none it reads zeros already, so
/// those ranges are as good as unchanged (a new object's unwritten part, a discard of data the
/// target never had).
pub fn zeros_only_where(changes: &[Change], allocated: &[(u64, u64)]) -> Vec<Change> {
    let mut out = Vec::new();
    for c in changes {
        if c.data {
            out.push(*c);
            continue;
        }
        let from = allocated.partition_point(|&(o, n)| o + n <= c.offset);
        for &(o, n) in allocated[from..].iter().take_while(|a| a.0 < c.end()) {
            let (s, e) = (o.max(c.offset), (o + n).min(c.end()));
            if s < e {
                out.push(Change {
                    offset: s,
                    len: e - s,
                    data: false,
                });
            }
        }
    }
    out
}

/// `changes` grown to whole blocks of `block` bytes within a disk of `size`: the partial
/// blocks at the ends of each range are read in full (as data), so every block a change
/// touches is seen whole (to digest it).
pub fn align_to_blocks(changes: &[Change], block: u64, size: u64) -> Vec<Change> {
    let mut fringes: Vec<(u64, u64)> = Vec::new();
    for c in changes {
        for at in [c.offset, c.end()] {
            if !at.is_multiple_of(block) {
                let s = at - at % block;
                fringes.push((s, block.min(size - s)));
            }
        }
    }
    fringes.sort_unstable();
    fringes.dedup();
    let reads: Vec<Change> = fringes
        .into_iter()
        .map(|(offset, len)| Change {
            offset,
            len,
            data: true,
        })
        .collect();
    // Fringes may overlap each other (one block holding two ends): merge them one by one.
    reads.iter().fold(changes.to_vec(), |acc, r| {
        merge(&acc, std::slice::from_ref(r))
    })
}

/// `inner` through a list of changes.
pub struct ChangedDisk<'a> {
    inner: &'a dyn DiskSource,
    changes: Vec<Change>,
}

impl<'a> ChangedDisk<'a> {
    /// `changes` sorted and not overlapping (as [`union`] makes them), within `inner`'s size.
    pub fn new(inner: &'a dyn DiskSource, changes: Vec<Change>) -> Self {
        ChangedDisk { inner, changes }
    }

    /// Bytes in changed ranges that hold data (read), and that changed to zeros.
    pub fn changed_bytes(&self) -> (u64, u64) {
        self.changes.iter().fold((0, 0), |(d, z), c| {
            if c.data {
                (d + c.len, z)
            } else {
                (d, z + c.len)
            }
        })
    }
}

impl DiskSource for ChangedDisk<'_> {
    fn virtual_size(&self) -> u64 {
        self.inner.virtual_size()
    }

    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        let end = offset.saturating_add(len).min(self.virtual_size());
        let mut out = Vec::new();
        let mut pos = offset;
        let from = self.changes.partition_point(|c| c.end() <= offset);
        let mut push = |s: u64, e: u64, kind| {
            if e > s {
                out.push(Extent {
                    offset: s,
                    len: e - s,
                    kind,
                });
            }
        };
        for c in self.changes[from..].iter().take_while(|c| c.offset < end) {
            let (s, e) = (c.offset.max(pos), c.end().min(end));
            push(pos, s, ExtentKind::Unchanged);
            let kind = if c.data {
                ExtentKind::Data
            } else {
                ExtentKind::Zero
            };
            push(s, e, kind);
            pos = e;
        }
        push(pos, end, ExtentKind::Unchanged);
        Ok(out)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.inner.read_at(offset, buf)
    }

    fn format_name(&self) -> &'static str {
        self.inner.format_name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(offset: u64, len: u64, data: bool) -> Change {
        Change { offset, len, data }
    }

    #[test]
    fn union_reads_what_the_target_may_have_wrong() {
        let changes = [c(0, 10, true), c(10, 10, false), c(40, 10, false)];
        let dirty = [(15, 30)];
        assert_eq!(
            union(&changes, &dirty),
            vec![
                c(0, 10, true),
                c(10, 5, false),
                c(15, 30, true),
                c(45, 5, false)
            ]
        );
        assert_eq!(union(&[], &[(5, 5)]), vec![c(5, 5, true)]);
        assert_eq!(union(&changes, &[]), changes.to_vec());
        assert_eq!(
            union(&[c(0, 4, false)], &[(8, 2)]),
            vec![c(0, 4, false), c(8, 2, true)]
        );
        assert_eq!(
            merge(&[c(0, 10, false)], &[c(5, 10, false), c(20, 1, true)]),
            vec![c(0, 15, false), c(20, 1, true)]
        );
    }

    #[test]
    fn zeros_are_kept_only_over_data() {
        let ch = [c(0, 10, false), c(10, 5, true), c(20, 10, false)];
        assert_eq!(
            zeros_only_where(&ch, &[(5, 10), (25, 100)]),
            vec![c(5, 5, false), c(10, 5, true), c(25, 5, false)]
        );
        assert_eq!(zeros_only_where(&ch, &[]), vec![c(10, 5, true)]);
    }

    #[test]
    fn aligned_changes_cover_whole_blocks() {
        let a = align_to_blocks(&[c(5, 10, false), c(40, 3, true)], 16, 50);
        assert_eq!(a, vec![c(0, 16, true), c(32, 16, true)]);
        // The short last block of the disk.
        assert_eq!(
            align_to_blocks(&[c(48, 1, false)], 16, 50),
            vec![c(48, 2, true)]
        );
        assert_eq!(
            align_to_blocks(&[c(16, 16, false)], 16, 50),
            vec![c(16, 16, false)]
        );
    }

    struct Flat(u64);
    impl DiskSource for Flat {
        fn virtual_size(&self) -> u64 {
            self.0
        }
        fn extents(&self, _: u64, _: u64) -> Result<Vec<Extent>> {
            unreachable!()
        }
        fn read_at(&self, _: u64, buf: &mut [u8]) -> Result<()> {
            buf.fill(1);
            Ok(())
        }
        fn format_name(&self) -> &'static str {
            "raw"
        }
    }

    #[test]
    fn extents_tile_the_range() {
        let flat = Flat(100);
        let d = ChangedDisk::new(&flat, vec![c(10, 10, true), c(30, 5, false)]);
        let e = d.extents(15, 100).unwrap();
        let kinds: Vec<_> = e.iter().map(|e| (e.offset, e.len, e.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                (15, 5, ExtentKind::Data),
                (20, 10, ExtentKind::Unchanged),
                (30, 5, ExtentKind::Zero),
                (35, 65, ExtentKind::Unchanged)
            ]
        );
        assert_eq!(d.changed_bytes(), (10, 5));
    }
}
