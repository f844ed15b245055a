//! The arithmetic of a qcow2 file rbdkit writes: cluster geometry, L2 entries (plain and
//! compressed), where the metadata goes (after the data in a file, before it in a stream), the
//! refcounts every host cluster needs, and the bytes of the header, L1 table and refcount
//! table. Pure functions, no I/O, so the on-disk format is tested apart from the copy; both
//! writers ([`super::Qcow2Sink`], [`super::stream::Qcow2StreamSink`]) plan here. The format is qemu's `docs/interop/qcow2.txt` (version 3, 16-bit refcounts, no
//! backing file, no snapshots, no extensions).
use crate::disk::qcow2::Compression;
use crate::error::{Error, Result};

/// 64 KiB clusters, qemu-img's default.
pub const CLUSTER_BITS: u32 = 16;
/// 16-bit refcounts (`refcount_order` 4), qemu-img's default.
pub const REFCOUNT_ORDER: u32 = 4;
/// Header length in bytes: the 104 of version 3 plus the compression type byte, padded to 8
/// (what qemu-img writes).
pub const HEADER_LENGTH: usize = 112;
/// L1 and L2 entry bit 63: the cluster's refcount is exactly one.
pub const OFLAG_COPIED: u64 = 1 << 63;
/// L2 entry bit 62: the cluster is compressed.
pub const OFLAG_COMPRESSED: u64 = 1 << 62;
/// Incompatible feature bit 3: the header's compression type field is not zlib.
const INCOMPAT_COMPRESSION: u64 = 1 << 3;
/// Compressed lengths are counted in 512-byte sectors.
const SECTOR: u64 = 512;

/// The sizes that follow from the cluster size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// log2 of the cluster size.
    pub cluster_bits: u32,
}

impl Default for Geometry {
    fn default() -> Self {
        Geometry {
            cluster_bits: CLUSTER_BITS,
        }
    }
}

/// Where the tables go relative to the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// After the data, which ends before `data_end` (a file: data lands as pieces finish, so
    /// the tables are known last): L2 tables, L1 table, refcount blocks, refcount table.
    After {
        /// One past the last data byte (the header's cluster included).
        data_end: u64,
    },
    /// Before `data_clusters` clusters of data (a stream: every table is known before the
    /// first data byte): L1 table, refcount table, refcount blocks, L2 tables, data.
    Before {
        /// Host clusters of data that follow the tables.
        data_clusters: u64,
    },
}

/// Where the tables go, each cluster-aligned, in the order of the [`Placement`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// Offset of the first data cluster (right after the header in a file; after the L2
    /// tables in a stream).
    pub data_offset: u64,
    /// Offset of the first L2 table; the others follow in L1 order.
    pub l2_offset: u64,
    /// L2 tables (one per L1 entry that maps any data).
    pub l2_tables: u64,
    /// Offset of the L1 table.
    pub l1_offset: u64,
    /// Clusters of the L1 table.
    pub l1_clusters: u64,
    /// Offset of the first refcount block; the others follow.
    pub refblock_offset: u64,
    /// Refcount blocks: enough for every cluster of the file, themselves included.
    pub refblocks: u64,
    /// Offset of the refcount table.
    pub reftable_offset: u64,
    /// Clusters of the refcount table.
    pub reftable_clusters: u64,
    /// Length of the file: the end of the refcount table (a file) or of the data (a stream).
    pub file_end: u64,
}

impl Geometry {
    /// Cluster size in bytes.
    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// Entries of an L2 table (8 bytes each, one cluster).
    pub fn l2_entries(&self) -> u64 {
        self.cluster_size() / 8
    }

    /// Guest bytes one L2 table maps.
    pub fn l2_span(&self) -> u64 {
        self.l2_entries() << self.cluster_bits
    }

    /// Entries of the L1 table for a disk of `size` bytes.
    pub fn l1_entries(&self, size: u64) -> u64 {
        size.div_ceil(self.l2_span())
    }

    /// Refcounts in one refcount block.
    pub fn refcounts_per_block(&self) -> u64 {
        (self.cluster_size() * 8) >> REFCOUNT_ORDER
    }

    /// Rounds `offset` up to a cluster boundary.
    pub fn align_up(&self, offset: u64) -> u64 {
        offset.div_ceil(self.cluster_size()) * self.cluster_size()
    }

    /// Bit where a compressed entry's sector count starts (qemu's `csize_shift`).
    fn csize_shift(&self) -> u32 {
        62 - (self.cluster_bits - 8)
    }

    /// The L2 entry of a cluster compressed into `len` bytes at host byte `offset`: the offset
    /// and the 512-byte sectors it reaches into beyond the first (qemu's encoding).
    pub fn compressed_entry(&self, offset: u64, len: u64) -> Result<u64> {
        let shift = self.csize_shift();
        let extra = (offset + len - 1) / SECTOR - offset / SECTOR;
        if len == 0 || len >= self.cluster_size() || offset >= 1 << shift {
            return Err(Error::Other(format!(
                "qcow2 writer: a compressed cluster of {len} bytes at offset {offset} cannot be encoded: this is a bug in rbdkit, please report it"
            )));
        }
        // `len` < one cluster, so `extra` < 2^(cluster_bits - 8): it fits its field.
        Ok(OFLAG_COMPRESSED | extra << shift | offset)
    }

    /// The host bytes a compressed entry names, as qemu reads (and `qemu-img check` counts)
    /// them: from the offset to the end of its last sector.
    pub fn compressed_span(&self, entry: u64) -> (u64, u64) {
        let shift = self.csize_shift();
        let offset = entry & ((1 << shift) - 1);
        let sectors = ((entry >> shift) & ((1 << (self.cluster_bits - 8)) - 1)) + 1;
        (offset, sectors * SECTOR - (offset & (SECTOR - 1)))
    }

    /// Lays out the metadata of an image with `l2_tables` L2 tables and an L1 table of
    /// `l1_entries`, after or before the data as `place` says, with refcount blocks covering
    /// every cluster of the file, which counts them too: their size is the least fixed point
    /// of that dependency.
    pub fn plan(&self, place: Placement, l2_tables: u64, l1_entries: u64) -> Metadata {
        let cs = self.cluster_size();
        // An empty disk has no L1 table: qemu counts no cluster for it (`l1_size` 0).
        let l1_clusters = (l1_entries * 8).div_ceil(cs);
        // The clusters that are not refcount structures.
        let others = match place {
            Placement::After { data_end } => {
                self.align_up(data_end.max(cs)) / cs + l2_tables + l1_clusters
            }
            Placement::Before { data_clusters } => 1 + l1_clusters + l2_tables + data_clusters,
        };
        let (refblocks, reftable_clusters) = self.refcount_clusters(others);
        let m = |data_offset, l2_offset, l1_offset, refblock_offset, reftable_offset, file_end| {
            Metadata {
                data_offset,
                l2_offset,
                l2_tables,
                l1_offset,
                l1_clusters,
                refblock_offset,
                refblocks,
                reftable_offset,
                reftable_clusters,
                file_end,
            }
        };
        match place {
            Placement::After { data_end } => {
                let l2_offset = self.align_up(data_end.max(cs));
                let l1_offset = l2_offset + l2_tables * cs;
                let refblock_offset = l1_offset + l1_clusters * cs;
                let reftable_offset = refblock_offset + refblocks * cs;
                let end = reftable_offset + reftable_clusters * cs;
                m(
                    cs,
                    l2_offset,
                    l1_offset,
                    refblock_offset,
                    reftable_offset,
                    end,
                )
            }
            Placement::Before { data_clusters } => {
                let l1_offset = cs;
                let reftable_offset = l1_offset + l1_clusters * cs;
                let refblock_offset = reftable_offset + reftable_clusters * cs;
                let l2_offset = refblock_offset + refblocks * cs;
                let data_offset = l2_offset + l2_tables * cs;
                let end = data_offset + data_clusters * cs;
                m(
                    data_offset,
                    l2_offset,
                    l1_offset,
                    refblock_offset,
                    reftable_offset,
                    end,
                )
            }
        }
    }

    /// Refcount blocks and refcount table clusters for a file of `others` clusters plus
    /// themselves.
    fn refcount_clusters(&self, others: u64) -> (u64, u64) {
        let (mut refblocks, mut reftable_clusters) = (0u64, 0u64);
        loop {
            let clusters = others + refblocks + reftable_clusters;
            let rb = clusters.div_ceil(self.refcounts_per_block());
            let rt = (rb * 8).div_ceil(self.cluster_size()).max(1);
            if (rb, rt) == (refblocks, reftable_clusters) {
                return (refblocks, reftable_clusters);
            }
            (refblocks, reftable_clusters) = (rb, rt);
        }
    }

    /// The size a disk of `size` bytes is stored as: qemu reads the size in whole 512-byte
    /// sectors (rounding down), so any other size is rounded up, its tail reading as zeros,
    /// as `qemu-img convert` does.
    pub fn stored_size(size: u64) -> u64 {
        size.div_ceil(SECTOR) * SECTOR
    }
}

/// The L1 table of `l1_entries` entries, as stored: the `k`-th of the L1 indices `mapped`
/// (increasing) points to the `k`-th L2 table of `m`, the other entries are zero.
pub fn l1_table(
    g: Geometry,
    m: &Metadata,
    l1_entries: u64,
    mapped: impl IntoIterator<Item = u64>,
) -> Vec<u8> {
    let mut l1 = vec![0u8; (l1_entries * 8) as usize];
    for (k, i) in mapped.into_iter().enumerate() {
        let at = m.l2_offset + k as u64 * g.cluster_size();
        let i = i as usize;
        l1[8 * i..8 * i + 8].copy_from_slice(&(at | OFLAG_COPIED).to_be_bytes());
    }
    l1
}

/// The refcount table of `m`, as stored: the offsets of its refcount blocks.
pub fn reftable(g: Geometry, m: &Metadata) -> Vec<u8> {
    (0..m.refblocks)
        .flat_map(|b| (m.refblock_offset + b * g.cluster_size()).to_be_bytes())
        .collect()
}

/// Refcount block `i` as stored: big-endian 16-bit counts, one cluster, `count(c)` for
/// cluster `c`.
pub fn refblock(g: Geometry, i: u64, count: impl Fn(u64) -> u16) -> Vec<u8> {
    let per = g.refcounts_per_block();
    let mut out = vec![0u8; g.cluster_size() as usize];
    for (k, c) in (i * per..(i + 1) * per).enumerate() {
        out[2 * k..2 * k + 2].copy_from_slice(&count(c).to_be_bytes());
    }
    out
}

/// Refcounts of every host cluster of the file, built up reference by reference.
pub struct Refcounts {
    counts: Vec<u16>,
    cluster_bits: u32,
}

impl Refcounts {
    /// Zero refcounts for a file of `file_end` bytes.
    pub fn new(g: Geometry, file_end: u64) -> Refcounts {
        Refcounts {
            counts: vec![0; (file_end >> g.cluster_bits) as usize],
            cluster_bits: g.cluster_bits,
        }
    }

    /// One more reference to every cluster `[offset, offset + len)` touches.
    pub fn add(&mut self, offset: u64, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let (first, last) = (
            offset >> self.cluster_bits,
            (offset + len - 1) >> self.cluster_bits,
        );
        for c in first..=last {
            let slot = self.counts.get_mut(c as usize).ok_or_else(|| {
                Error::Other(format!(
                    "qcow2 writer: cluster {c} lies past the end of the file: this is a bug in rbdkit, please report it"
                ))
            })?;
            // 16-bit refcounts overflow only with 65536 compressed clusters in one cluster,
            // each at least a byte: impossible with 64 KiB clusters.
            *slot = slot.checked_add(1).ok_or_else(|| {
                Error::Other(format!("qcow2 writer: cluster {c}'s refcount overflows"))
            })?;
        }
        Ok(())
    }

    /// The refcount of cluster `c` (0 past the file).
    pub fn get(&self, c: u64) -> u16 {
        self.counts.get(c as usize).copied().unwrap_or(0)
    }

    /// Refcount block `i` as stored ([`refblock`]).
    pub fn block(&self, g: Geometry, i: u64) -> Vec<u8> {
        refblock(g, i, |c| self.get(c))
    }
}

/// The header fields that vary.
#[derive(Clone, Copy, Debug)]
pub struct HeaderFields {
    /// Guest-visible size.
    pub size: u64,
    /// Entries of the L1 table.
    pub l1_entries: u64,
    /// How compressed clusters are compressed (zstd sets the incompatible bit).
    pub compression: Compression,
}

/// The version 3 header, [`HEADER_LENGTH`] bytes; the bytes after it in cluster 0 stay zero,
/// which reads as the end-of-extensions marker.
pub fn header(g: Geometry, f: HeaderFields, m: &Metadata) -> Vec<u8> {
    let mut h = vec![0u8; HEADER_LENGTH];
    let mut put = |at: usize, bytes: &[u8]| h[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, b"QFI\xfb");
    put(4, &3u32.to_be_bytes());
    put(20, &g.cluster_bits.to_be_bytes());
    put(24, &f.size.to_be_bytes());
    put(36, &(f.l1_entries as u32).to_be_bytes());
    put(40, &m.l1_offset.to_be_bytes());
    put(48, &m.reftable_offset.to_be_bytes());
    put(56, &(m.reftable_clusters as u32).to_be_bytes());
    let zstd = f.compression == Compression::Zstd;
    let incompatible = if zstd { INCOMPAT_COMPRESSION } else { 0 };
    put(72, &incompatible.to_be_bytes());
    put(96, &REFCOUNT_ORDER.to_be_bytes());
    put(100, &(HEADER_LENGTH as u32).to_be_bytes());
    put(104, &[u8::from(zstd)]);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: Geometry = Geometry { cluster_bits: 16 };

    fn after(data_end: u64) -> Placement {
        Placement::After { data_end }
    }

    #[test]
    fn geometry_of_64k_clusters() {
        assert_eq!(G.cluster_size(), 65536);
        assert_eq!(G.l2_entries(), 8192);
        assert_eq!(G.l2_span(), 512 << 20);
        assert_eq!(G.refcounts_per_block(), 32768);
        assert_eq!(G.l1_entries(0), 0);
        assert_eq!(G.l1_entries(1), 1);
        assert_eq!(G.l1_entries(512 << 20), 1);
        assert_eq!(G.l1_entries((512 << 20) + 1), 2);
        assert_eq!(G.l1_entries(1 << 40), 2048);
        assert_eq!(G.align_up(0), 0);
        assert_eq!(G.align_up(1), 65536);
        assert_eq!(G.align_up(65536), 65536);
    }

    #[test]
    fn compressed_entries_round_trip_as_qemu_encodes_them() {
        // 100 bytes at 0x10000: within one sector, no extra sectors.
        let e = G.compressed_entry(0x10000, 100).unwrap();
        assert_eq!(e, OFLAG_COMPRESSED | 0x10000);
        assert_eq!(G.compressed_span(e), (0x10000, 512));
        // 1000 bytes starting 12 bytes before a sector boundary: three sectors touched.
        let off = 0x20000 + 500;
        let e = G.compressed_entry(off, 1000).unwrap();
        assert_eq!((e >> 54) & 0xff, 2);
        let (o, len) = G.compressed_span(e);
        assert_eq!(o, off);
        assert!(len >= 1000 && (o + len).is_multiple_of(512), "{len}");
        // The largest compressed cluster at the worst alignment still fits the 8-bit field.
        let e = G.compressed_entry(511, 65535).unwrap();
        assert_eq!(G.compressed_span(e), (511, 65536 + 512 - 511));
        assert!(
            G.compressed_entry(0, 65536).is_err(),
            "a whole cluster is stored raw"
        );
        assert!(G.compressed_entry(1 << 54, 10).is_err());
    }

    #[test]
    fn metadata_follows_the_data_and_counts_itself() {
        // Header cluster only, one L2 table, a 1 GiB disk.
        let m = G.plan(after(65536), 1, 2);
        assert_eq!(m.l2_offset, 65536);
        assert_eq!(m.l1_offset, 2 * 65536);
        assert_eq!(m.l1_clusters, 1);
        assert_eq!(m.refblock_offset, 3 * 65536);
        assert_eq!((m.refblocks, m.reftable_clusters), (1, 1));
        assert_eq!(m.reftable_offset, 4 * 65536);
        assert_eq!(m.file_end, 5 * 65536);
        // Data not ending on a cluster: the tables start at the next one.
        assert_eq!(G.plan(after(65536 * 3 + 7), 0, 1).l2_offset, 65536 * 4);
        // An empty disk has no L1 table (qemu would call a cluster for it leaked).
        let m = G.plan(after(0), 0, 0);
        assert_eq!((m.l1_clusters, m.refblock_offset), (0, 65536));
    }

    #[test]
    fn refcount_blocks_cover_themselves_at_the_boundary() {
        // Exactly one block's worth of clusters before the refcount structures: they need a
        // second block, which the plan must find.
        let per = G.refcounts_per_block();
        let data_end = (per - 2) * 65536; // + 1 L1 cluster = per - 1 clusters before
        let m = G.plan(after(data_end), 0, 1);
        let clusters = m.file_end / 65536;
        assert!(m.refblocks * per >= clusters, "{m:?}");
        assert_eq!(m.refblocks, 2, "{m:?}");
        // And a large file: a reftable of several clusters.
        let m = G.plan(after(10 << 40), 20480, 20480);
        let clusters = m.file_end / 65536;
        assert!(m.refblocks * per >= clusters);
        assert!(m.reftable_clusters * 8192 >= m.refblocks);
        assert_eq!(
            m.refblocks,
            clusters.div_ceil(per),
            "no more blocks than needed"
        );
    }

    #[test]
    fn a_stream_puts_every_table_before_the_data() {
        // A 1 GiB disk: 2 L1 entries, both mapped, and 100 data clusters.
        let m = G.plan(Placement::Before { data_clusters: 100 }, 2, 2);
        assert_eq!(m.l1_offset, 65536);
        assert_eq!((m.reftable_offset, m.reftable_clusters), (2 * 65536, 1));
        assert_eq!((m.refblock_offset, m.refblocks), (3 * 65536, 1));
        assert_eq!(m.l2_offset, 4 * 65536);
        assert_eq!(m.data_offset, 6 * 65536);
        assert_eq!(m.file_end, 106 * 65536);
        // One block's worth of clusters short by one before the refcount structures: with
        // them the file needs a second block, which counts the data after it too.
        let per = G.refcounts_per_block();
        let m = G.plan(
            Placement::Before {
                data_clusters: per - 4,
            },
            1,
            1,
        );
        assert_eq!(m.refblocks, 2, "{m:?}");
        assert!(m.refblocks * per >= m.file_end / 65536, "{m:?}");
        assert_eq!(m.data_offset, m.l2_offset + 65536);
        assert_eq!(m.file_end, m.data_offset + (per - 4) * 65536);
        // An empty disk: the header, the refcount table and one block.
        let m = G.plan(Placement::Before { data_clusters: 0 }, 0, 0);
        assert_eq!(
            (m.l1_clusters, m.data_offset, m.file_end),
            (0, 3 * 65536, 3 * 65536)
        );
    }

    #[test]
    fn tables_point_where_the_plan_says() {
        let m = G.plan(Placement::Before { data_clusters: 3 }, 2, 4);
        let l1 = l1_table(G, &m, 4, [1, 3]);
        let entry = |i: usize| u64::from_be_bytes(l1[8 * i..8 * i + 8].try_into().unwrap());
        assert_eq!(l1.len(), 32);
        assert_eq!((entry(0), entry(2)), (0, 0));
        assert_eq!(entry(1), m.l2_offset | OFLAG_COPIED);
        assert_eq!(entry(3), (m.l2_offset + 65536) | OFLAG_COPIED);
        let rt = reftable(G, &m);
        assert_eq!(rt, m.refblock_offset.to_be_bytes());
        let b = refblock(G, 0, |c| u16::from(c < 2));
        assert_eq!(&b[..6], &[0, 1, 0, 1, 0, 0]);
    }

    #[test]
    fn refcounts_count_each_touched_cluster() {
        let mut r = Refcounts::new(G, 4 * 65536);
        r.add(0, 65536).unwrap();
        r.add(65536 + 60000, 10000).unwrap(); // straddles clusters 1 and 2
        r.add(65536 + 100, 50).unwrap();
        assert_eq!((r.get(0), r.get(1), r.get(2), r.get(3)), (1, 2, 1, 0));
        assert!(
            r.add(4 * 65536, 1).is_err(),
            "past the end is a bug, not a wrap"
        );
        let b = r.block(G, 0);
        assert_eq!(&b[..8], &[0, 1, 0, 2, 0, 1, 0, 0]);
    }

    #[test]
    fn header_fields_land_where_qemu_reads_them() {
        let m = G.plan(after(65536), 1, 2);
        let f = HeaderFields {
            size: 1 << 30,
            l1_entries: 2,
            compression: Compression::Zstd,
        };
        let h = header(G, f, &m);
        assert_eq!(&h[0..4], b"QFI\xfb");
        assert_eq!(u32::from_be_bytes(h[4..8].try_into().unwrap()), 3);
        assert_eq!(u32::from_be_bytes(h[20..24].try_into().unwrap()), 16);
        assert_eq!(u64::from_be_bytes(h[24..32].try_into().unwrap()), 1 << 30);
        assert_eq!(
            u64::from_be_bytes(h[40..48].try_into().unwrap()),
            m.l1_offset
        );
        assert_eq!(
            u64::from_be_bytes(h[48..56].try_into().unwrap()),
            m.reftable_offset
        );
        assert_eq!(u64::from_be_bytes(h[72..80].try_into().unwrap()), 8);
        assert_eq!(h[104], 1);
        let f = HeaderFields {
            compression: Compression::Deflate,
            ..f
        };
        let h = header(G, f, &m);
        assert_eq!(u64::from_be_bytes(h[72..80].try_into().unwrap()), 0);
        assert_eq!(h[104], 0);
    }
}
