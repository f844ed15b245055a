//! Decoding one compressed qcow2 cluster: raw deflate (no zlib header) or zstd (one or more
//! frames). Output is exactly one cluster; input past the end of the stream (sector padding)
//! is ignored; too little input is an error. Never allocates from the input: deflate's window is
//! fixed, zstd's is capped at [`ZSTD_WINDOW_LOG_MAX`]. Decoder state is kept per thread and
//! reset between clusters, so the copy engine's threads do not rebuild it per cluster.
use super::header::Compression;
use std::cell::RefCell;

/// Largest zstd window accepted (log2): 32 MiB. A cluster is at most 2 MiB, and qemu writes
/// each cluster as frames of known content size, so real windows are no larger than a cluster;
/// the cap bounds what a hostile frame header can make the decoder allocate per thread.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 25;

thread_local! {
    static INFLATE: RefCell<Option<flate2::Decompress>> = const { RefCell::new(None) };
    static UNZSTD: RefCell<Option<zstd::stream::raw::Decoder<'static>>> =
        const { RefCell::new(None) };
}

/// Decodes the compressed form of one cluster, `input` (may run past the end of the compressed
/// data, as the sector-rounded length in the L2 entry does), into `out`, which must be filled
/// completely: `out.len()` is the cluster size. The error says what is wrong with the data.
pub fn decode_cluster(
    compression: Compression,
    input: &[u8],
    out: &mut [u8],
) -> Result<(), String> {
    match compression {
        Compression::Deflate => INFLATE.with(|cell| {
            // try_borrow_mut: no re-entrancy is possible, but a fresh decoder beats a panic.
            match cell.try_borrow_mut() {
                Ok(mut slot) => {
                    let d = slot.get_or_insert_with(|| flate2::Decompress::new(false));
                    d.reset(false);
                    inflate(d, input, out)
                }
                Err(_) => inflate(&mut flate2::Decompress::new(false), input, out),
            }
        }),
        Compression::Zstd => UNZSTD.with(|cell| match cell.try_borrow_mut() {
            Ok(mut slot) => {
                if slot.is_none() {
                    *slot = Some(new_zstd()?);
                }
                match slot.as_mut() {
                    Some(d) => {
                        use zstd::stream::raw::Operation;
                        d.reinit().map_err(|e| format!("zstd decoder: {e}"))?;
                        let r = unzstd(d, input, out);
                        if r.is_err() {
                            // A decoder that saw corrupt input is not trusted with the next one.
                            *slot = None;
                        }
                        r
                    }
                    None => unzstd(&mut new_zstd()?, input, out),
                }
            }
            Err(_) => unzstd(&mut new_zstd()?, input, out),
        }),
    }
}

fn new_zstd() -> Result<zstd::stream::raw::Decoder<'static>, String> {
    let mut d = zstd::stream::raw::Decoder::new().map_err(|e| format!("zstd decoder: {e}"))?;
    d.set_parameter(zstd::stream::raw::DParameter::WindowLogMax(
        ZSTD_WINDOW_LOG_MAX,
    ))
    .map_err(|e| format!("zstd decoder: {e}"))?;
    Ok(d)
}

fn inflate(d: &mut flate2::Decompress, input: &[u8], out: &mut [u8]) -> Result<(), String> {
    // Each pass consumes input or produces output, or we stop: at most input+output passes.
    loop {
        let (in_pos, out_pos) = (d.total_in() as usize, d.total_out() as usize);
        if out_pos >= out.len() {
            return Ok(());
        }
        let rest = input.get(in_pos..).unwrap_or(&[]);
        let status = d
            .decompress(rest, &mut out[out_pos..], flate2::FlushDecompress::Finish)
            .map_err(|e| format!("corrupt deflate data: {e}"))?;
        let progressed = d.total_in() as usize != in_pos || d.total_out() as usize != out_pos;
        if d.total_out() as usize >= out.len() {
            return Ok(());
        }
        if status == flate2::Status::StreamEnd || !progressed {
            return Err(format!(
                "compressed cluster decodes to {} bytes, expected {}",
                d.total_out(),
                out.len()
            ));
        }
    }
}

fn unzstd(
    d: &mut zstd::stream::raw::Decoder<'static>,
    input: &[u8],
    out: &mut [u8],
) -> Result<(), String> {
    use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
    let mut inb = InBuffer::around(input);
    let mut outb = OutBuffer::around(out);
    // Each pass consumes input or produces output, or we stop: at most input+output passes.
    // Frames follow each other: the decoder starts the next frame by itself.
    loop {
        let (ip, op) = (inb.pos(), outb.pos());
        if op == outb.capacity() {
            return Ok(());
        }
        d.run(&mut inb, &mut outb)
            .map_err(|e| format!("corrupt zstd data: {e}"))?;
        if outb.pos() == outb.capacity() {
            return Ok(());
        }
        if inb.pos() == ip && outb.pos() == op {
            return Err(format!(
                "compressed cluster decodes to {} bytes, expected {}",
                outb.pos(),
                outb.capacity()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn raw_deflate_round_trip_with_padding() {
        let data: Vec<u8> = (0..65536u32).map(|i| (i / 7) as u8).collect();
        let mut enc =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&data).unwrap();
        let mut c = enc.finish().unwrap();
        c.extend([0u8; 300]);
        let mut out = vec![0u8; 65536];
        decode_cluster(Compression::Deflate, &c, &mut out).unwrap();
        assert_eq!(out, data);
        let mut short = vec![0u8; 70000];
        assert!(decode_cluster(Compression::Deflate, &c, &mut short).is_err());
        assert!(decode_cluster(Compression::Deflate, &[0xff; 64], &mut out).is_err());
    }

    #[test]
    fn zstd_across_frames() {
        let a = vec![1u8; 30000];
        let b = vec![2u8; 35536];
        let mut c = zstd::encode_all(&a[..], 3).unwrap();
        let first_frame = c.len();
        c.extend(zstd::encode_all(&b[..], 3).unwrap());
        c.extend([0u8; 100]);
        let mut out = vec![0u8; 65536];
        decode_cluster(Compression::Zstd, &c, &mut out).unwrap();
        assert_eq!(&out[..30000], &a[..]);
        assert_eq!(&out[30000..], &b[..]);
        assert!(decode_cluster(Compression::Zstd, &c[..first_frame], &mut out).is_err());
    }

    #[test]
    fn decoders_are_reused_cleanly_after_errors() {
        let data: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
        let z = zstd::encode_all(&data[..], 3).unwrap();
        let mut out = vec![0u8; 4096];
        for round in 0..3 {
            assert!(decode_cluster(Compression::Zstd, &z[..z.len() / 2], &mut out).is_err());
            decode_cluster(Compression::Zstd, &z, &mut out).unwrap();
            assert_eq!(out, data, "round {round}");
        }
        let mut enc =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&data).unwrap();
        let c = enc.finish().unwrap();
        for _ in 0..3 {
            assert!(decode_cluster(Compression::Deflate, &c[..10], &mut out).is_err());
            out.fill(0);
            decode_cluster(Compression::Deflate, &c, &mut out).unwrap();
            assert_eq!(out, data);
        }
    }

    #[test]
    fn zstd_window_is_capped() {
        // A frame declaring a 64 MiB window (no content size) is refused, not allocated.
        let mut c = zstd::stream::raw::Encoder::new(3).unwrap();
        use zstd::stream::raw::{CParameter, InBuffer, Operation, OutBuffer};
        c.set_parameter(CParameter::WindowLog(26)).unwrap();
        c.set_parameter(CParameter::ContentSizeFlag(false)).unwrap();
        let data = vec![9u8; 8192];
        let mut buf = vec![0u8; 1 << 16];
        let mut ob = OutBuffer::around(&mut buf[..]);
        c.run(&mut InBuffer::around(&data), &mut ob).unwrap();
        c.finish(&mut ob, true).unwrap();
        let n = ob.pos();
        let mut out = vec![0u8; 8192];
        let e = decode_cluster(Compression::Zstd, &buf[..n], &mut out).unwrap_err();
        assert!(e.contains("zstd"), "{e}");
    }
}
