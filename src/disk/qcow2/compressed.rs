//! Decoding one compressed qcow2 cluster: raw deflate (no zlib header) or zstd (one or more
//! frames). Output is exactly one cluster; input past the end of the stream (sector padding)
//! is ignored; too little input is an error. Never allocates from the input.
use super::header::Compression;

/// Decodes `input` into `out`, which must be filled completely.
pub fn decode_cluster(
    compression: Compression,
    input: &[u8],
    out: &mut [u8],
) -> Result<(), String> {
    match compression {
        Compression::Deflate => inflate(input, out),
        Compression::Zstd => unzstd(input, out),
    }
}

fn inflate(input: &[u8], out: &mut [u8]) -> Result<(), String> {
    let mut d = flate2::Decompress::new(false);
    loop {
        let (in_pos, out_pos) = (d.total_in() as usize, d.total_out() as usize);
        if out_pos == out.len() {
            return Ok(());
        }
        let status = d
            .decompress(
                &input[in_pos..],
                &mut out[out_pos..],
                flate2::FlushDecompress::Finish,
            )
            .map_err(|e| format!("corrupt deflate data: {e}"))?;
        let progressed = d.total_in() as usize != in_pos || d.total_out() as usize != out_pos;
        if d.total_out() as usize == out.len() {
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

fn unzstd(input: &[u8], out: &mut [u8]) -> Result<(), String> {
    use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};
    let mut d = Decoder::new().map_err(|e| format!("zstd decoder: {e}"))?;
    let mut inb = InBuffer::around(input);
    let mut outb = OutBuffer::around(out);
    // Each pass consumes input or produces output, or we stop: at most input+output passes.
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
}
