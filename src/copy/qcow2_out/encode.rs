//! Compressing one qcow2 cluster as qemu reads it back: raw deflate with a 4 KiB window
//! (qemu inflates with `windowBits` -12, so a larger window would make distances it cannot
//! follow), or one zstd frame. Runs on the decode threads; the compressor state is kept per
//! thread and reset per cluster, as the reader's decoders are.
use crate::disk::qcow2::Compression;
use std::cell::RefCell;

/// qemu's deflate window (log2).
const DEFLATE_WINDOW_BITS: u8 = 12;
/// qemu's zstd level (`ZSTD_CLEVEL_DEFAULT`).
const ZSTD_LEVEL: i32 = 3;

thread_local! {
    static DEFLATE: RefCell<Option<flate2::Compress>> = const { RefCell::new(None) };
    static ZSTD: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
}

/// Compresses `input` (one cluster) into `out`; the compressed length, or `None` when it does
/// not fit (the caller passes one byte less than a cluster, as qemu does: such a cluster is
/// stored uncompressed).
pub fn compress_cluster(c: Compression, input: &[u8], out: &mut [u8]) -> Option<usize> {
    match c {
        Compression::Deflate => DEFLATE.with(|cell| {
            let mut slot = cell.try_borrow_mut().ok()?;
            let d = slot.get_or_insert_with(|| {
                flate2::Compress::new_with_window_bits(
                    flate2::Compression::default(),
                    false,
                    DEFLATE_WINDOW_BITS,
                )
            });
            d.reset();
            match d.compress(input, out, flate2::FlushCompress::Finish) {
                Ok(flate2::Status::StreamEnd) => Some(d.total_out() as usize),
                // Out of room (or a failure, which leaves the cluster to be stored as is).
                _ => None,
            }
        }),
        Compression::Zstd => ZSTD.with(|cell| {
            let mut slot = cell.try_borrow_mut().ok()?;
            if slot.is_none() {
                *slot = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
            }
            // An error is "destination too small" in practice: the cluster goes uncompressed.
            slot.as_mut()?.compress_to_buffer(input, out).ok()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::qcow2::decode_cluster;

    fn text_cluster() -> Vec<u8> {
        (0..65536u32)
            .map(|i| b"the quick brown fox jumps over the lazy dog "[(i % 44) as usize])
            .collect()
    }

    #[test]
    fn compressed_clusters_decode_with_the_reader() {
        let input = text_cluster();
        for c in [Compression::Deflate, Compression::Zstd] {
            let mut out = vec![0u8; 65535];
            let n = compress_cluster(c, &input, &mut out).unwrap();
            assert!(n < 4096, "{c:?}: {n}");
            // Sector padding after the data, as the reader gets it.
            let mut back = vec![0u8; 65536];
            decode_cluster(c, &out[..n + 300], &mut back).unwrap();
            assert_eq!(back, input);
            // The state is reset between clusters.
            let n2 = compress_cluster(c, &input, &mut out).unwrap();
            assert_eq!(n, n2);
        }
    }

    #[test]
    fn incompressible_clusters_do_not_fit() {
        use rand::{RngCore, SeedableRng};
        let mut input = vec![0u8; 65536];
        rand::rngs::SmallRng::seed_from_u64(7).fill_bytes(&mut input);
        for c in [Compression::Deflate, Compression::Zstd] {
            let mut out = vec![0u8; 65535];
            assert_eq!(compress_cluster(c, &input, &mut out), None, "{c:?}");
            // And the next cluster compresses normally after a failed one.
            assert!(compress_cluster(c, &text_cluster(), &mut out).is_some());
        }
    }
}
