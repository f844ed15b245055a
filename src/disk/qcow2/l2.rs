//! L2 tables: what one entry says about a guest (sub)cluster, and a bounded cache of decoded
//! tables shared by every reader thread. Pure decoding lives here; loading from the file (with
//! its bounds checks) lives in the reader, which hands this module a loader.
use crate::error::Result;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Bits 9-55 of an L1 or standard L2 entry: a host offset.
pub const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// L2 entry bit 63: refcount exactly one (with an external data file: allocated at offset 0).
const OFLAG_COPIED: u64 = 1 << 63;
/// L2 entry bit 62: the cluster is compressed.
const OFLAG_COMPRESSED: u64 = 1 << 62;
/// Standard cluster descriptor bit 0: reads as zeros (not used with extended L2).
const OFLAG_ZERO: u64 = 1;
/// Subclusters per cluster with extended L2 entries.
pub const SUBCLUSTERS: u64 = 32;

/// Where one guest (sub)cluster's bytes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapping {
    /// Stored uncompressed at this host offset (of the data file if there is one), which is
    /// where the looked-up guest byte itself lives.
    Data(u64),
    /// Reads as zeros.
    Zero,
    /// Not allocated in this image: the backing file's bytes, or zeros.
    Unallocated,
    /// Compressed: host offset and length (whole sectors, may overrun the data's end) of the
    /// compressed form of the whole cluster.
    Compressed(u64, u64),
}

/// What the entry decoding needs to know about the image.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// log2 of the cluster size (9..=21, validated by the header).
    pub cluster_bits: u32,
    /// 128-bit entries with 32 subclusters.
    pub extended_l2: bool,
    /// Data lives in an external data file (host offset 0 is then a real offset).
    pub data_file: bool,
    /// Standard entries may carry the zero flag (bit 0): version 3 images only. In version 2
    /// the bit is reserved and qemu fails the read ("Zero cluster entry found in pre-v3
    /// image"), so reading zeros there would silently differ from qemu.
    pub zero_flag: bool,
}

impl Layout {
    /// Cluster size in bytes.
    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// Entries per L2 table (a table fills one cluster).
    pub fn l2_entries(&self) -> u64 {
        self.cluster_size() >> if self.extended_l2 { 4 } else { 3 }
    }

    /// Guest bytes one L2 table maps.
    pub fn l2_span(&self) -> u64 {
        self.l2_entries() << self.cluster_bits
    }

    /// The 64-bit words of entry `index` in a table: (descriptor, subcluster bitmap).
    pub fn entry(&self, table: &[u64], index: usize) -> (u64, u64) {
        if self.extended_l2 {
            (table[2 * index], table[2 * index + 1])
        } else {
            (table[index], 0)
        }
    }

    /// Decodes the entry of the cluster holding guest byte `in_cluster` (its offset inside the
    /// cluster): the mapping of that byte and how many bytes it holds for, to the end of its
    /// subcluster (extended L2) or cluster. Errors say what is wrong with the entry.
    pub fn classify(
        &self,
        entry: u64,
        bitmap: u64,
        in_cluster: u64,
    ) -> std::result::Result<(Mapping, u64), String> {
        let cs = self.cluster_size();
        let to_cluster_end = cs - in_cluster;
        if entry & OFLAG_COMPRESSED != 0 {
            if self.data_file {
                return Err(
                    "compressed cluster in an image with an external data file (not allowed)"
                        .into(),
                );
            }
            // Bits 0..x-1: host offset; x..61: extra 512-byte sectors; x = 62 - (bits - 8).
            let x = 62 - (self.cluster_bits - 8);
            let offset = entry & ((1u64 << x) - 1);
            let sectors = ((entry & !(OFLAG_COPIED | OFLAG_COMPRESSED)) >> x) + 1;
            let len = sectors * 512 - (offset & 511);
            return Ok((Mapping::Compressed(offset, len), to_cluster_end));
        }
        let host = entry & OFFSET_MASK;
        if host & (cs - 1) != 0 {
            return Err(format!(
                "data cluster offset {host:#x} is not aligned to the cluster size {cs}"
            ));
        }
        if !self.extended_l2 {
            if entry & OFLAG_ZERO != 0 && !self.zero_flag {
                return Err(format!(
                    "entry {entry:#x} has the zero flag (bit 0), which a version 2 image must not use (qemu refuses to read it)"
                ));
            }
            let allocated = host != 0 || (self.data_file && entry & OFLAG_COPIED != 0);
            let m = if entry & OFLAG_ZERO != 0 {
                Mapping::Zero
            } else if allocated {
                Mapping::Data(host + in_cluster)
            } else {
                Mapping::Unallocated
            };
            return Ok((m, to_cluster_end));
        }
        let sc_size = cs / SUBCLUSTERS;
        let sc = in_cluster / sc_size;
        let alloc = bitmap >> sc & 1 != 0;
        let zero = bitmap >> (32 + sc) & 1 != 0;
        let m = match (alloc, zero) {
            (true, true) => {
                return Err(format!(
                    "subcluster {sc} is marked both allocated and zero (bitmap {bitmap:#x})"
                ))
            }
            (true, false) if host == 0 && !self.data_file => {
                return Err(format!(
                    "subcluster {sc} is allocated but its cluster has no host offset"
                ))
            }
            (true, false) => Mapping::Data(host + in_cluster),
            (false, true) => Mapping::Zero,
            (false, false) => Mapping::Unallocated,
        };
        Ok((m, sc_size - in_cluster % sc_size))
    }
}

/// Decoded L2 tables by file offset, at most `max_tables` of them.
pub struct L2Cache {
    tables: Mutex<HashMap<u64, Arc<[u64]>>>,
    max_tables: usize,
}

impl L2Cache {
    /// A cache holding about `bytes` of tables of `table_bytes` each (at least 16 tables).
    pub fn new(bytes: u64, table_bytes: u64) -> L2Cache {
        L2Cache {
            tables: Mutex::new(HashMap::new()),
            max_tables: (bytes / table_bytes.max(1)).max(16) as usize,
        }
    }

    /// The table at `offset`, from the cache or from `load`. The lock is not held while
    /// loading, so a slow read never stalls other threads' hits; two threads missing the same
    /// table at once both load it, which is harmless.
    pub fn get(&self, offset: u64, load: impl FnOnce() -> Result<Vec<u64>>) -> Result<Arc<[u64]>> {
        // A poisoned lock only means another thread panicked mid-insert; the map is still sound.
        if let Some(t) = self.lock().get(&offset) {
            return Ok(t.clone());
        }
        let table: Arc<[u64]> = load()?.into();
        let mut tables = self.lock();
        if tables.len() >= self.max_tables {
            // Bounded memory matters more than hit rate: the copy engine walks the disk in
            // order, so dropping everything costs at most one re-read per table.
            tables.clear();
        }
        tables.insert(offset, table.clone());
        Ok(table)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<[u64]>>> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STD64K: Layout = Layout {
        cluster_bits: 16,
        extended_l2: false,
        data_file: false,
        zero_flag: true,
    };

    #[test]
    fn standard_entries() {
        let l = STD64K;
        assert_eq!(l.l2_entries(), 8192);
        assert_eq!(l.classify(0, 0, 5).unwrap(), (Mapping::Unallocated, 65531));
        assert_eq!(l.classify(1, 0, 0).unwrap(), (Mapping::Zero, 65536));
        assert_eq!(
            l.classify(OFLAG_COPIED | 0x30000, 0, 100).unwrap(),
            (Mapping::Data(0x30064), 65436)
        );
        // Preallocated zero cluster: still zeros.
        assert_eq!(l.classify(0x30001, 0, 0).unwrap().0, Mapping::Zero);
        assert!(l.classify(0x30200, 0, 0).unwrap_err().contains("aligned"));
        // Offset 0 with COPIED is a real offset only in an external data file.
        assert_eq!(
            l.classify(OFLAG_COPIED, 0, 0).unwrap().0,
            Mapping::Unallocated
        );
        let df = Layout {
            data_file: true,
            ..l
        };
        assert_eq!(df.classify(OFLAG_COPIED, 0, 7).unwrap().0, Mapping::Data(7));
        // Version 2: the zero flag is corruption, with or without a host offset.
        let v2 = Layout {
            zero_flag: false,
            ..l
        };
        assert!(v2.classify(1, 0, 0).unwrap_err().contains("version 2"));
        assert!(v2
            .classify(0x30001, 0, 0)
            .unwrap_err()
            .contains("zero flag"));
        assert_eq!(
            v2.classify(0x30000, 0, 0).unwrap().0,
            Mapping::Data(0x30000)
        );
        // A compressed entry's bit 0 is part of its offset, in any version.
        let e = OFLAG_COMPRESSED | 0x12341;
        assert!(matches!(
            v2.classify(e, 0, 0).unwrap().0,
            Mapping::Compressed(..)
        ));
    }

    #[test]
    fn compressed_descriptor() {
        // 64 KiB clusters: x = 54; offset 0x12345, 3 extra sectors.
        let l = STD64K;
        let e = OFLAG_COMPRESSED | (3u64 << 54) | 0x12345;
        let (m, run) = l.classify(e, 0, 0x100).unwrap();
        assert_eq!(m, Mapping::Compressed(0x12345, 4 * 512 - 0x145));
        assert_eq!(run, 65536 - 0x100);
        let df = Layout {
            data_file: true,
            ..l
        };
        assert!(df.classify(e, 0, 0).is_err());
        // 2 MiB clusters: x = 49, the sector count has 13 bits.
        let big = Layout {
            cluster_bits: 21,
            ..l
        };
        let e = OFLAG_COMPRESSED | (((1u64 << 13) - 1) << 49) | 512;
        assert_eq!(
            big.classify(e, 0, 0).unwrap().0,
            Mapping::Compressed(512, 8192 * 512)
        );
    }

    #[test]
    fn subclusters() {
        let l = Layout {
            extended_l2: true,
            ..STD64K
        };
        assert_eq!(l.l2_entries(), 4096);
        let host = 0x50000;
        // Subcluster 0 allocated, 1 zero, 2 unallocated (2 KiB subclusters).
        let bitmap = 1 | (1u64 << 33);
        let table = [host, bitmap];
        let (e, b) = l.entry(&table, 0);
        assert_eq!(
            l.classify(e, b, 10).unwrap(),
            (Mapping::Data(host + 10), 2038)
        );
        assert_eq!(l.classify(e, b, 2048).unwrap(), (Mapping::Zero, 2048));
        assert_eq!(
            l.classify(e, b, 4097).unwrap(),
            (Mapping::Unallocated, 2047)
        );
        // The zero flag of standard entries means nothing here.
        assert_eq!(l.classify(1, 0, 0).unwrap().0, Mapping::Unallocated);
        assert!(l.classify(host, 1 | 1 << 32, 0).is_err());
        assert!(l.classify(0, 1, 0).is_err());
    }

    #[test]
    fn cache_is_bounded_and_shares_tables() {
        let c = L2Cache::new(0, 1);
        let a = c.get(0, || Ok(vec![1, 2])).unwrap();
        let b = c.get(0, || panic!("cached")).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        for i in 1..100 {
            c.get(i, || Ok(vec![i])).unwrap();
        }
        assert!(c.lock().len() <= 16);
        assert!(c
            .get(1000, || Err(crate::error::Error::Other("x".into())))
            .is_err());
    }
}
