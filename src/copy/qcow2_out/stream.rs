//! A qcow2 image as a forward-only stream (`-O qcow2` to stdout: a Glance upload of a Nova
//! snapshot without a temporary file). A stream cannot seek back, so every table is known
//! before the first data byte: the source's allocation map, taken before the copy
//! ([`MappedDisk`](crate::disk::mapped::MappedDisk)), gives every guest cluster that overlaps
//! an allocated extent a host cluster, in guest order, and the file is laid out as
//! [header][L1][refcount table][refcount blocks][L2 tables][data clusters in guest order]
//! ([`layout`](super::layout), [`Placement::Before`]). The data then follows as the engine
//! delivers it in guest order, through a [`StreamSink`], which writes the gaps as zeros: this
//! sink only moves guest offsets to host offsets and holds no data of its own.
//!
//! What it costs: a cluster inside an allocated extent that turns out to hold only zeros is
//! still stored (as zeros; the file writer skips it), unallocated clusters cost nothing, and
//! nothing is compressed (compressed sizes are known only after the data). Memory: the map's
//! runs, one L2 table at a time while the tables go out.
use super::layout::{self, Geometry, HeaderFields, Metadata, Placement, OFLAG_COPIED};
use crate::copy::sink_stream::StreamSink;
use crate::copy::{PoolBuf, Sink};
use crate::disk::qcow2::Compression;
use crate::error::{Error, Result};

/// Guest clusters stored, as runs in guest order, each with its place among the stored.
struct ClusterMap {
    /// (first guest cluster, clusters, data clusters stored before it).
    runs: Vec<(u64, u64, u64)>,
}

impl ClusterMap {
    /// Every cluster overlapping a range of `data` (`(start, end)` bytes, in guest order).
    fn new(g: Geometry, data: impl IntoIterator<Item = (u64, u64)>) -> ClusterMap {
        let mut runs: Vec<(u64, u64, u64)> = Vec::new();
        for (s, e) in data.into_iter().filter(|(s, e)| e > s) {
            let (first, end) = (s >> g.cluster_bits, e.div_ceil(g.cluster_size()));
            match runs.last_mut() {
                Some((f, n, _)) if *f + *n >= first => *n = (*f + *n).max(end) - *f,
                _ => {
                    let rank = runs.last().map_or(0, |&(_, n, r)| r + n);
                    runs.push((first, end - first, rank));
                }
            }
        }
        ClusterMap { runs }
    }

    /// Clusters stored.
    fn clusters(&self) -> u64 {
        self.runs.last().map_or(0, |&(_, n, r)| r + n)
    }

    /// The L1 indices that map any cluster, increasing.
    fn l1_indices(&self, g: Geometry) -> Vec<u64> {
        let per = g.l2_entries();
        let mut out: Vec<u64> = Vec::new();
        for &(f, n, _) in &self.runs {
            for i in f / per..=(f + n - 1) / per {
                if out.last() != Some(&i) {
                    out.push(i);
                }
            }
        }
        out
    }

    /// The run holding guest cluster `gc`.
    fn run_of(&self, gc: u64) -> Option<(u64, u64, u64)> {
        let i = self.runs.partition_point(|&(f, n, _)| f + n <= gc);
        self.runs.get(i).copied().filter(|&(f, _, _)| f <= gc)
    }
}

/// A qcow2 image written in one forward pass into a [`StreamSink`]; the copy must write in
/// guest order ([`Sink::ordered`]) and only inside the map it was made with.
pub struct Qcow2StreamSink<'a> {
    out: &'a mut StreamSink,
    g: Geometry,
    /// The disk's size, as the copy reports it.
    size: u64,
    map: ClusterMap,
    m: Metadata,
    l1_entries: u64,
    /// The header and tables are out.
    started: bool,
}

impl<'a> Qcow2StreamSink<'a> {
    /// A sink writing a disk of `size` bytes whose data lies in `data` (`(start, end)`, in
    /// guest order, inside the disk) as a qcow2 image into `out`. Nothing is written yet.
    pub fn new(
        out: &'a mut StreamSink,
        size: u64,
        data: impl IntoIterator<Item = (u64, u64)>,
    ) -> Result<Self> {
        let g = Geometry::default();
        let map = ClusterMap::new(g, data);
        if let Some(&(f, n, _)) = map.runs.last() {
            if (f + n) << g.cluster_bits > g.align_up(size) {
                return Err(Error::Other(format!(
                    "qcow2 stream: the allocation map reaches past the end of a disk of {size} bytes: this is a bug in rbdkit, please report it"
                )));
            }
        }
        let l1_entries = g.l1_entries(Geometry::stored_size(size));
        let place = Placement::Before {
            data_clusters: map.clusters(),
        };
        let m = g.plan(place, map.l1_indices(g).len() as u64, l1_entries);
        Ok(Qcow2StreamSink {
            out,
            g,
            size,
            map,
            m,
            l1_entries,
            started: false,
        })
    }

    /// The length of the image this sink writes.
    pub fn file_len(&self) -> u64 {
        self.m.file_end
    }

    /// Writes the header and every table, once, before the first data byte.
    fn start(&mut self) -> Result<()> {
        if self.started {
            return Ok(());
        }
        self.started = true;
        let (g, m) = (self.g, self.m);
        let fields = HeaderFields {
            size: Geometry::stored_size(self.size),
            l1_entries: self.l1_entries,
            compression: Compression::Deflate,
        };
        self.out.write_bytes(0, &layout::header(g, fields, &m))?;
        let mapped = self.map.l1_indices(g);
        let l1 = layout::l1_table(g, &m, self.l1_entries, mapped.iter().copied());
        self.out.write_bytes(m.l1_offset, &l1)?;
        self.out
            .write_bytes(m.reftable_offset, &layout::reftable(g, &m))?;
        // Every cluster of the file is referenced once: the metadata and the data alike.
        let clusters = m.file_end >> g.cluster_bits;
        for b in 0..m.refblocks {
            let block = layout::refblock(g, b, |c| u16::from(c < clusters));
            self.out
                .write_bytes(m.refblock_offset + b * g.cluster_size(), &block)?;
        }
        for (k, &i) in mapped.iter().enumerate() {
            let at = m.l2_offset + k as u64 * g.cluster_size();
            self.out.write_bytes(at, &self.l2_table(i))?;
        }
        Ok(())
    }

    /// L2 table `i` as stored: the host cluster of every guest cluster it maps that is
    /// stored, zero for the others.
    fn l2_table(&self, i: u64) -> Vec<u8> {
        let (g, per) = (self.g, self.g.l2_entries());
        let (lo, hi) = (i * per, (i + 1) * per);
        let mut t = vec![0u8; g.cluster_size() as usize];
        let from = self.map.runs.partition_point(|&(f, n, _)| f + n <= lo);
        for &(f, n, rank) in self.map.runs[from..].iter().take_while(|r| r.0 < hi) {
            for gc in f.max(lo)..(f + n).min(hi) {
                let host = self.m.data_offset + ((rank + gc - f) << g.cluster_bits);
                let k = ((gc - lo) * 8) as usize;
                t[k..k + 8].copy_from_slice(&(host | OFLAG_COPIED).to_be_bytes());
            }
        }
        t
    }
}

impl Sink for Qcow2StreamSink<'_> {
    fn ensure_size(&mut self, size: u64) -> Result<()> {
        if size > self.size {
            return Err(Error::Other(format!(
                "qcow2 stream: the copy grew past {} bytes, the size its tables were made for: this is a bug in rbdkit, please report it",
                self.size
            )));
        }
        Ok(())
    }

    fn write(&mut self, offset: u64, data: PoolBuf) -> Result<()> {
        self.start()?;
        let bits = self.g.cluster_bits;
        let end = offset + data.len() as u64;
        let run = self.map.run_of(offset >> bits);
        let Some((f, _, rank)) = run.filter(|&(f, n, _)| end <= (f + n) << bits) else {
            return Err(Error::Other(format!(
                "qcow2 stream: data at guest bytes {offset}..{end} lies outside the clusters mapped before the copy: this is a bug in rbdkit, please report it"
            )));
        };
        let host = self.m.data_offset
            + ((rank + (offset >> bits) - f) << bits)
            + (offset & (self.g.cluster_size() - 1));
        self.out.write(host, data)
    }

    fn finish(&mut self, size: u64) -> Result<()> {
        if size != self.size {
            return Err(Error::Other(format!(
                "qcow2 stream: the copy ended at {size} bytes, its tables were made for {}: this is a bug in rbdkit, please report it",
                self.size
            )));
        }
        self.start()?;
        self.out.finish(self.m.file_end)
    }

    fn ordered(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_of_overlapping_and_touching_extents_merge_into_runs() {
        let g = Geometry::default();
        let c = 65536u64;
        let per = g.l2_entries();
        let map = ClusterMap::new(
            g,
            [
                (100, 200),             // cluster 0
                (2 * c - 1, 2 * c + 1), // clusters 1 and 2: touches 0
                (3 * c, 3 * c + 5),     // cluster 3: touches 2
                (10 * c, 10 * c + 1),   // cluster 10
                (10 * c + 9, 10 * c + 9),
                (3 * per * c + 5, 3 * per * c + 6), // in the fourth L2 table
            ],
        );
        assert_eq!(map.runs, [(0, 4, 0), (10, 1, 4), (3 * per, 1, 5)]);
        assert_eq!(map.clusters(), 6);
        assert_eq!(map.l1_indices(g), [0, 3]);
        assert_eq!(map.run_of(3), Some((0, 4, 0)));
        assert_eq!(map.run_of(4), None);
        assert_eq!(map.run_of(10), Some((10, 1, 4)));
        assert_eq!(map.run_of(3 * per + 1), None);
    }
}
