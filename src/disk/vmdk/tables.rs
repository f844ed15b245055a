//! The grain directory and grain tables of a sparse extent, read whole at open and checked as a
//! whole: every table and every grain must lie inside the file, and no two of them (nor the
//! header, the descriptor or the directory) may overlap. Overlapping grains are how a small
//! hostile file claims a huge amount of data (one compressed grain named by every entry), and
//! a grain over a table would read the image's own metadata as guest data; neither happens in
//! an image VMware or qemu writes, so both are refused.
//!
//! Memory is capped: the tables kept in memory are at most [`MAX_TABLE_BYTES`] (4 bytes per
//! grain: 128 MiB maps 2 TiB at qemu's 64 KiB grains, the largest sparse extent VMware
//! defines), plus 4 bytes per allocated grain for the sorted list used by the checks.
use super::header::{SparseHeader, SECTOR};
use crate::disk::qcow2::ByteSource;
use crate::error::{Error, Result};

/// Bytes of grain tables an extent may keep in memory.
pub const MAX_TABLE_BYTES: u64 = 128 << 20;
/// Directory entry of a grain table that is not allocated.
const NO_TABLE: u32 = u32::MAX;

/// Where one grain's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grain {
    /// Not allocated: reads as zeros (there is no parent).
    Unallocated,
    /// A zero grain (grain table entry 1 with the zero-grain flag).
    Zero,
    /// Stored at this sector of the file (compressed when the extent is).
    At(u64),
}

/// The checked tables of one sparse extent.
#[derive(Debug)]
pub struct GrainTables {
    /// Per directory entry: the index of its table in `entries` (in tables), or `NO_TABLE`.
    dir: Vec<u32>,
    /// The allocated tables, one after another, `per_table` entries each.
    entries: Vec<u32>,
    per_table: u64,
    zero_grain: bool,
    /// Number of grains covering the capacity.
    grains: u64,
    /// Sectors where grains start, sorted: bounds a compressed grain's extent in the file.
    starts: Vec<u32>,
    /// Sectors where metadata (header, descriptor, directory, tables) starts, sorted.
    meta_starts: Vec<u64>,
    file_size: u64,
}

impl GrainTables {
    /// Reads the directory and tables the header points to from `file` and checks them.
    pub fn read(file: &dyn ByteSource, h: &SparseHeader, shown: &str) -> Result<GrainTables> {
        let bad = |why: String| Error::bad_image(shown, why);
        let file_size = file.size();
        let mut raw_dir = vec![0u8; (h.gd_entries * 4) as usize];
        file.read_exact_at(&mut raw_dir, h.gd_offset * SECTOR)
            .map_err(|e| Error::io(format!("read the VMDK grain directory of {shown}"), e))?;
        let table_bytes = h.gtes_per_gt * 4;
        let table_sectors = table_bytes.div_ceil(SECTOR);
        // Metadata regions (start, sectors): header, descriptor, directory, then each table.
        let mut meta: Vec<(u64, u64)> =
            vec![(0, 1), (h.gd_offset, (h.gd_entries * 4).div_ceil(SECTOR))];
        if h.desc_offset != 0 && h.desc_sectors != 0 {
            meta.push((h.desc_offset, h.desc_sectors));
        }
        let mut dir = Vec::with_capacity(h.gd_entries as usize);
        let mut entries: Vec<u32> = Vec::new();
        let mut raw_table = vec![0u8; table_bytes as usize];
        let grains = h.capacity.div_ceil(h.grain_sectors);
        for (i, w) in raw_dir.chunks_exact(4).enumerate() {
            let sector = u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as u64;
            if sector == 0 {
                dir.push(NO_TABLE);
                continue;
            }
            if sector * SECTOR + table_bytes > file_size {
                return Err(bad(format!(
                    "VMDK grain table {i} at sector {sector} lies outside the file ({file_size} bytes): the file is truncated or corrupt"
                )));
            }
            if (entries.len() as u64 + h.gtes_per_gt) * 4 > MAX_TABLE_BYTES {
                return Err(bad(format!(
                    "VMDK grain tables need more than {} MiB of memory: refused",
                    MAX_TABLE_BYTES >> 20
                )));
            }
            file.read_exact_at(&mut raw_table, sector * SECTOR)
                .map_err(|e| Error::io(format!("read VMDK grain table {i} of {shown}"), e))?;
            dir.push((entries.len() as u64 / h.gtes_per_gt) as u32);
            // Entries past the capacity (the last table's tail) are never read: kept as 0.
            let first = i as u64 * h.gtes_per_gt;
            entries.extend(raw_table.chunks_exact(4).enumerate().map(|(j, e)| {
                if first + j as u64 >= grains {
                    0
                } else {
                    u32::from_le_bytes([e[0], e[1], e[2], e[3]])
                }
            }));
            meta.push((sector, table_sectors));
        }
        let mut t = GrainTables {
            dir,
            entries,
            per_table: h.gtes_per_gt,
            zero_grain: h.zero_grain,
            grains,
            starts: Vec::new(),
            meta_starts: Vec::new(),
            file_size,
        };
        t.check_grains(h, file_size, &mut meta, shown)?;
        Ok(t)
    }

    /// Checks every grain against the file and against each other and the metadata.
    fn check_grains(
        &mut self,
        h: &SparseHeader,
        file_size: u64,
        meta: &mut [(u64, u64)],
        shown: &str,
    ) -> Result<()> {
        let bad = |why: String| Error::bad_image(shown, why);
        let grain = h.grain_sectors;
        // An uncompressed grain occupies a whole grain; a compressed one at least its marker
        // sector (its real length is checked against the next region when it is read).
        let span = if h.compressed { 1 } else { grain };
        let mut starts = Vec::new();
        // Only allocated tables are walked: a huge capacity with few tables stays cheap.
        let tables: Vec<u64> = (0..self.dir.len() as u64)
            .filter(|&d| self.dir[d as usize] != NO_TABLE)
            .collect();
        let in_tables = tables
            .iter()
            .flat_map(|&d| d * self.per_table..((d + 1) * self.per_table).min(self.grains));
        for g in in_tables {
            if let Grain::At(s) = self.grain(g) {
                let guest_left = (h.capacity - g * grain).min(grain) * SECTOR;
                let need = if h.compressed {
                    SECTOR.min(file_size)
                } else {
                    guest_left
                };
                if s.checked_mul(SECTOR)
                    .and_then(|o| o.checked_add(need))
                    .is_none_or(|e| e > file_size)
                {
                    return Err(bad(format!(
                        "VMDK grain {g} at sector {s} lies outside the file ({file_size} bytes): the file is truncated or corrupt"
                    )));
                }
                starts.push(s as u32);
            }
        }
        starts.sort_unstable();
        for w in starts.windows(2) {
            if (w[0] as u64) + span > w[1] as u64 {
                return Err(bad(format!(
                    "VMDK grains at sectors {} and {} overlap: the image is corrupt (or built to claim more data than it holds)",
                    w[0], w[1]
                )));
            }
        }
        meta.sort_unstable();
        for w in meta.windows(2) {
            if w[0].0 + w[0].1 > w[1].0 {
                return Err(bad(format!(
                    "VMDK metadata at sectors {} and {} overlap: the image is corrupt",
                    w[0].0, w[1].0
                )));
            }
        }
        for &(m, len) in meta.iter() {
            // The first grain starting at or after m must start after the region; the last
            // grain before m must end by m.
            let i = starts.partition_point(|&s| (s as u64) < m);
            let hits_after = starts.get(i).is_some_and(|&s| (s as u64) < m + len);
            let hits_before = i > 0 && starts[i - 1] as u64 + span > m;
            if hits_after || hits_before {
                return Err(bad(format!(
                    "a VMDK grain overlaps the metadata at sector {m}: the image is corrupt"
                )));
            }
        }
        self.meta_starts = meta.iter().map(|m| m.0).collect();
        self.starts = starts;
        Ok(())
    }

    /// The number of grains covering the capacity.
    pub fn grains(&self) -> u64 {
        self.grains
    }

    /// Where grain `g` (< [`GrainTables::grains`]) is.
    pub fn grain(&self, g: u64) -> Grain {
        let (d, j) = (g / self.per_table, g % self.per_table);
        let Some(&t) = self.dir.get(d as usize) else {
            return Grain::Unallocated;
        };
        if t == NO_TABLE {
            return Grain::Unallocated;
        }
        let e = self
            .entries
            .get((t as u64 * self.per_table + j) as usize)
            .copied()
            .unwrap_or(0);
        match e {
            0 => Grain::Unallocated,
            1 if self.zero_grain => Grain::Zero,
            s => Grain::At(s as u64),
        }
    }

    /// The byte offset by which a compressed grain at sector `s` must end: where the next
    /// grain or metadata starts, or the end of the file.
    pub fn end_bound(&self, s: u64) -> u64 {
        let g = self
            .starts
            .get(self.starts.partition_point(|&x| (x as u64) <= s))
            .map(|&x| x as u64 * SECTOR);
        let m = self
            .meta_starts
            .get(self.meta_starts.partition_point(|&x| x <= s))
            .map(|&x| x * SECTOR);
        [g, m].into_iter().flatten().fold(self.file_size, u64::min)
    }

    /// The kind of grain `g` and how many grains from `g` (at least 1, at most `max`) have
    /// that kind; a missing grain table is skipped whole.
    pub fn run(&self, g: u64, max: u64) -> (Grain, u64) {
        let first = self.grain(g);
        let class = |x: Grain| match x {
            Grain::Unallocated => 0,
            Grain::Zero => 1,
            Grain::At(_) => 2,
        };
        let mut n = 0;
        while n < max && g + n < self.grains {
            let cur = g + n;
            if class(first) == 0 && self.table_missing(cur) {
                n = (cur / self.per_table + 1) * self.per_table - g;
                continue;
            }
            if class(self.grain(cur)) != class(first) {
                break;
            }
            n += 1;
        }
        (first, n.min(max).min(self.grains - g).max(1))
    }

    fn table_missing(&self, g: u64) -> bool {
        self.dir
            .get((g / self.per_table) as usize)
            .is_none_or(|&t| t == NO_TABLE)
    }

    /// Grains that hold data (compressed or not).
    pub fn allocated_grains(&self) -> u64 {
        self.starts.len() as u64
    }
}
