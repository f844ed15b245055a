//! What each benchmark job does next: read or write, at which offset. Offsets come from a
//! seeded RNG (repeatable), a sequential cursor, or a permutation of blocks (each block written
//! once, for the first-write phase, then revisited for overwrite and read).
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::sync::Arc;

/// Access pattern, named as fio names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rw {
    /// Sequential reads.
    Read,
    /// Sequential writes.
    Write,
    /// Random reads.
    Randread,
    /// Random writes.
    Randwrite,
    /// Random mix (`mix` percent reads).
    Randrw,
}

impl Rw {
    /// Parses fio's names.
    pub fn parse(s: &str) -> Option<Rw> {
        Some(match s {
            "read" => Rw::Read,
            "write" => Rw::Write,
            "randread" => Rw::Randread,
            "randwrite" => Rw::Randwrite,
            "randrw" => Rw::Randrw,
            _ => return None,
        })
    }

    /// fio's name.
    pub fn name(&self) -> &'static str {
        match self {
            Rw::Read => "read",
            Rw::Write => "write",
            Rw::Randread => "randread",
            Rw::Randwrite => "randwrite",
            Rw::Randrw => "randrw",
        }
    }

    /// Whether the pattern reads at all.
    pub fn reads(&self) -> bool {
        matches!(self, Rw::Read | Rw::Randread | Rw::Randrw)
    }

    /// Whether the pattern issues writes.
    pub fn writes(&self) -> bool {
        matches!(self, Rw::Write | Rw::Randwrite | Rw::Randrw)
    }
}

/// Where offsets come from.
#[derive(Clone, Debug)]
pub enum Pattern {
    /// fio's pattern over the whole region.
    Plain(Rw),
    /// Each listed block once, in list order (first write into holes).
    Blocks {
        /// Block indices, shared by all jobs (job i takes every jobs-th one).
        blocks: Arc<Vec<u32>>,
        /// Read instead of write.
        read: bool,
        /// Start over at the end of the list (overwrite and read phases).
        cycle: bool,
    },
}

/// One I/O to issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    /// Read (else write).
    pub read: bool,
    /// Byte offset.
    pub offset: u64,
}

/// Generates the I/Os of one job.
pub struct OpGen {
    pattern: Pattern,
    rng: SmallRng,
    bs: u64,
    blocks: u64,
    mix_read_pct: u32,
    cursor: u64,
    step: u64,
}

impl OpGen {
    /// A generator for job `job` of `jobs`, over `region` bytes in blocks of `bs`.
    pub fn new(
        pattern: Pattern,
        region: u64,
        bs: u64,
        mix_read_pct: u32,
        seed: u64,
        job: u64,
        jobs: u64,
    ) -> OpGen {
        let blocks = (region / bs.max(1)).max(1);
        // Sequential jobs start at evenly spaced points so they do not write the same blocks.
        let cursor = match pattern {
            Pattern::Plain(Rw::Read | Rw::Write) => blocks * job / jobs.max(1),
            _ => job,
        };
        OpGen {
            pattern,
            rng: SmallRng::seed_from_u64(
                seed.wrapping_add(job.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            ),
            bs,
            blocks,
            mix_read_pct,
            cursor,
            step: jobs.max(1),
        }
    }

    /// The next I/O, or `None` when a block list is used up.
    pub fn next_op(&mut self) -> Option<Op> {
        match &self.pattern {
            Pattern::Plain(rw) => {
                let (read, block) = match rw {
                    Rw::Read | Rw::Write => {
                        let b = self.cursor % self.blocks;
                        self.cursor += 1;
                        (*rw == Rw::Read, b)
                    }
                    Rw::Randread => (true, self.rng.gen_range(0..self.blocks)),
                    Rw::Randwrite => (false, self.rng.gen_range(0..self.blocks)),
                    Rw::Randrw => (
                        self.rng.gen_range(0..100) < self.mix_read_pct,
                        self.rng.gen_range(0..self.blocks),
                    ),
                };
                Some(Op {
                    read,
                    offset: block * self.bs,
                })
            }
            Pattern::Blocks {
                blocks,
                read,
                cycle,
            } => {
                if *cycle && !blocks.is_empty() && self.cursor as usize >= blocks.len() {
                    self.cursor %= blocks.len() as u64;
                }
                let b = *blocks.get(self.cursor as usize)?;
                self.cursor += self.step;
                Some(Op {
                    read: *read,
                    offset: b as u64 * self.bs,
                })
            }
        }
    }
}

/// A seeded random permutation of the region's blocks (capped: 2^26 blocks is 256 GiB at 4K).
pub fn permutation(region: u64, bs: u64, seed: u64) -> Vec<u32> {
    let n = (region / bs.max(1)).min(1 << 26) as u32;
    let mut v: Vec<u32> = (0..n).collect();
    v.shuffle(&mut SmallRng::seed_from_u64(seed ^ 0x5eed));
    v
}

/// Shuffles a block list for a later phase (so overwrite/read do not just replay the order).
pub fn reshuffle(blocks: &[u32], seed: u64) -> Vec<u32> {
    let mut v = blocks.to_vec();
    v.shuffle(&mut SmallRng::seed_from_u64(seed ^ 0xfeed));
    v
}

/// Fills a buffer with incompressible bytes.
pub fn random_fill(buf: &mut [u8], seed: u64) {
    SmallRng::seed_from_u64(seed).fill(buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let mut g = OpGen::new(Pattern::Plain(Rw::Write), 16 << 10, 4096, 0, 1, 0, 1);
        let offs: Vec<u64> = (0..5).map(|_| g.next_op().unwrap().offset).collect();
        assert_eq!(offs, [0, 4096, 8192, 12288, 0]);
        let mut r = OpGen::new(Pattern::Plain(Rw::Randread), 1 << 20, 4096, 0, 7, 0, 1);
        for _ in 0..100 {
            let op = r.next_op().unwrap();
            assert!(op.read && op.offset.is_multiple_of(4096) && op.offset < 1 << 20);
        }
        let perm = Arc::new(permutation(64 << 10, 4096, 3));
        let mut seen: Vec<u64> = Vec::new();
        for job in 0..2 {
            let mut b = OpGen::new(
                Pattern::Blocks {
                    blocks: perm.clone(),
                    read: false,
                    cycle: false,
                },
                64 << 10,
                4096,
                0,
                3,
                job,
                2,
            );
            while let Some(op) = b.next_op() {
                seen.push(op.offset);
            }
        }
        seen.sort();
        assert_eq!(
            seen,
            (0..16).map(|i| i * 4096).collect::<Vec<u64>>(),
            "every block exactly once"
        );
    }
}
