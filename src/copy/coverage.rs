//! Which guest bytes have reached the consumer, so a copy that ends with a hole in it (a
//! producer that stopped early, a piece lost on the way) fails instead of publishing a short
//! image.
use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// Disjoint byte ranges, merged as they touch: in-order copies keep a single range.
#[derive(Default)]
pub(crate) struct Coverage {
    /// start → end.
    ranges: BTreeMap<u64, u64>,
}

impl Coverage {
    /// Records `[start, start + len)`; an error if any of it was already there.
    pub fn add(&mut self, start: u64, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let end = start + len;
        let before = self
            .ranges
            .range(..=start)
            .next_back()
            .map(|(&s, &e)| (s, e));
        let after = self.ranges.range(start..).next().map(|(&s, &e)| (s, e));
        if before.is_some_and(|(_, e)| e > start) || after.is_some_and(|(s, _)| s < end) {
            return Err(Error::Other(format!(
                "copy failed: bytes {start}..{end} of the disk came twice: this is a bug in rbdkit, please report it"
            )));
        }
        let (mut s, mut e) = (start, end);
        if let Some((bs, be)) = before.filter(|&(_, be)| be == start) {
            self.ranges.remove(&bs);
            (s, e) = (bs, e.max(be));
        }
        if let Some((as_, ae)) = after.filter(|&(as_, _)| as_ == end) {
            self.ranges.remove(&as_);
            e = ae;
        }
        self.ranges.insert(s, e);
        Ok(())
    }

    /// Ok when exactly `[0, total)` arrived; else the first missing range, as an error.
    pub fn complete(&self, total: u64) -> Result<()> {
        let mut pos = 0u64;
        for (&s, &e) in &self.ranges {
            if s != pos {
                break;
            }
            pos = e;
        }
        if pos == total && self.ranges.len() <= 1 {
            return Ok(());
        }
        let gap_end = self.ranges.range(pos..).next().map_or(total, |(&s, _)| s);
        Err(Error::Other(format!(
            "copy failed: the source stopped short: bytes {pos}..{gap_end} of {total} never arrived; nothing was published"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_and_out_of_order_pieces_tile_the_disk() {
        let mut c = Coverage::default();
        for (s, l) in [(0, 10), (10, 5), (30, 10), (15, 15)] {
            c.add(s, l).unwrap();
        }
        assert_eq!(c.ranges.len(), 1);
        c.complete(40).unwrap();
        assert!(c.add(35, 1).is_err(), "an overlap is refused");
    }

    #[test]
    fn a_gap_or_a_short_end_is_an_error() {
        let mut c = Coverage::default();
        c.add(0, 10).unwrap();
        c.add(20, 10).unwrap();
        let e = c.complete(30).unwrap_err().to_string();
        assert!(e.contains("bytes 10..20 of 30 never arrived"), "{e}");
        let mut c = Coverage::default();
        c.add(0, 10).unwrap();
        assert!(c.complete(11).unwrap_err().to_string().contains("10..11"));
        Coverage::default().complete(0).unwrap();
    }
}
