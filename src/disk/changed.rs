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
    let mut cuts: Vec<u64> = changes
        .iter()
        .flat_map(|c| [c.offset, c.end()])
        .chain(must_read.iter().flat_map(|&(o, n)| [o, o + n]))
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let (mut i, mut j) = (0, 0);
    let mut out: Vec<Change> = Vec::new();
    for w in cuts.windows(2) {
        let (s, e) = (w[0], w[1]);
        while i < changes.len() && changes[i].end() <= s {
            i += 1;
        }
        while j < must_read.len() && must_read[j].0 + must_read[j].1 <= s {
            j += 1;
        }
        let in_change = changes.get(i).filter(|c| c.offset <= s);
        let in_read = must_read.get(j).is_some_and(|&(o, _)| o <= s);
        let data = match (in_change, in_read) {
            (_, true) => true,
            (Some(c), false) => c.data,
            (None, false) => continue,
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
