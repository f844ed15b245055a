//! One compressed grain: with markers (streamOptimized), a 12-byte marker (the grain's guest
//! sector, the compressed length) then a zlib stream; without, the zlib stream alone. The
//! stream must end inside the bytes the grain may occupy and inflate to at most one grain,
//! covering at least the guest bytes the grain holds: a marker whose length or sector lies, or
//! a stream that stops short or runs on, is an error, never zeros or a guess. Decoder state is
//! kept per thread and reset between grains; it never allocates from the input.
use std::cell::RefCell;

/// Bytes of a grain marker before its data: lba (u64), size (u32).
pub const MARKER_LEN: usize = 12;

thread_local! {
    static INFLATE: RefCell<Option<flate2::Decompress>> = const { RefCell::new(None) };
}

/// What a compressed grain's bytes must satisfy.
#[derive(Clone, Copy, Debug)]
pub struct Expect {
    /// The grain starts with a marker.
    pub markers: bool,
    /// The guest sector the marker must name (the grain's first sector).
    pub lba: u64,
    /// Guest bytes the grain must yield (a whole grain but at the end of the disk).
    pub need: usize,
}

/// The compressed payload inside `input` (the grain's bytes in the file, as far as it may
/// extend): after the marker, of the marker's length, when there are markers.
pub fn payload<'a>(input: &'a [u8], e: &Expect) -> Result<&'a [u8], String> {
    if !e.markers {
        return Ok(input);
    }
    let Some(m) = input.get(..MARKER_LEN) else {
        return Err("its marker is cut short by the next grain or the end of the file".into());
    };
    let lba = u64::from_le_bytes(m[..8].try_into().expect("8 bytes"));
    let size = u32::from_le_bytes(m[8..12].try_into().expect("4 bytes")) as usize;
    if size == 0 {
        return Err("a metadata marker stands where a grain should be".into());
    }
    if lba != e.lba {
        return Err(format!(
            "its marker names guest sector {lba}, not {}, the sector its table entry maps",
            e.lba
        ));
    }
    input
        .get(MARKER_LEN..MARKER_LEN + size)
        .ok_or_else(|| {
            format!(
                "its marker claims {size} compressed bytes, more than the {} before the next grain or the end of the file",
                input.len() - MARKER_LEN
            )
        })
}

/// Inflates the zlib stream `data` into `out` (one grain); returns the bytes produced, which
/// are at least `need`.
pub fn inflate(data: &[u8], out: &mut [u8], need: usize) -> Result<usize, String> {
    INFLATE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => {
            let d = slot.get_or_insert_with(|| flate2::Decompress::new(true));
            d.reset(true);
            run(d, data, out, need)
        }
        // No re-entrancy is possible, but a fresh decoder beats a panic.
        Err(_) => run(&mut flate2::Decompress::new(true), data, out, need),
    })
}

fn run(
    d: &mut flate2::Decompress,
    data: &[u8],
    out: &mut [u8],
    need: usize,
) -> Result<usize, String> {
    use flate2::{FlushDecompress, Status};
    // Each pass consumes input or produces output, or the loop stops.
    loop {
        let (i, o) = (d.total_in() as usize, d.total_out() as usize);
        let o_at = o.min(out.len());
        let status = d
            .decompress(
                &data[i.min(data.len())..],
                &mut out[o_at..],
                FlushDecompress::Finish,
            )
            .map_err(|e| format!("its deflate data is corrupt ({e})"))?;
        let (i2, o2) = (d.total_in() as usize, d.total_out() as usize);
        match status {
            Status::StreamEnd => {
                if o2 < need {
                    return Err(format!(
                        "it inflates to {o2} bytes, short of the {need} the grain holds"
                    ));
                }
                return Ok(o2);
            }
            // No progress: the output is full, the input is spent, or it does not decode.
            _ if i2 == i && o2 == o => {
                return Err(if o2 >= out.len() {
                    format!("it inflates to more than one grain ({} bytes)", out.len())
                } else if i2 >= data.len() {
                    "its deflate data ends before the stream does".into()
                } else {
                    "its deflate data does not decode".into()
                })
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(data).unwrap();
        z.finish().unwrap()
    }

    fn marked(lba: u64, z: &[u8]) -> Vec<u8> {
        let mut v = lba.to_le_bytes().to_vec();
        v.extend((z.len() as u32).to_le_bytes());
        v.extend(z);
        v
    }

    #[test]
    fn grains_decode_and_lies_are_caught() {
        let grain: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
        let z = zlib(&grain);
        let e = Expect {
            markers: true,
            lba: 8,
            need: 4096,
        };
        let mut out = vec![0u8; 4096];
        let mut input = marked(8, &z);
        input.extend([0u8; 100]);
        let p = payload(&input, &e).unwrap();
        assert_eq!(inflate(p, &mut out, 4096).unwrap(), 4096);
        assert_eq!(out, grain);
        // Without markers the payload is the whole input.
        assert_eq!(
            payload(
                &z,
                &Expect {
                    markers: false,
                    ..e
                }
            )
            .unwrap(),
            &z[..]
        );

        let err = |input: &[u8], e: &Expect, out: &mut [u8]| {
            payload(input, e).and_then(|p| inflate(p, out, e.need).map(|_| ()))
        };
        assert!(err(&marked(9, &z), &e, &mut out)
            .unwrap_err()
            .contains("guest sector 9"));
        assert!(err(&marked(8, &[]), &e, &mut out)
            .unwrap_err()
            .contains("metadata marker"));
        assert!(err(&input[..5], &e, &mut out)
            .unwrap_err()
            .contains("cut short"));
        let mut long = marked(8, &z);
        long[8..12].copy_from_slice(&100_000u32.to_le_bytes());
        assert!(err(&long, &e, &mut out)
            .unwrap_err()
            .contains("claims 100000"));
        // The length cuts the stream short.
        let mut short = marked(8, &z[..z.len() / 2]);
        short.extend(&z[z.len() / 2..]);
        assert!(err(&short, &e, &mut out)
            .unwrap_err()
            .contains("ends before"));
        // More than a grain, less than a grain, garbage.
        let mut small = vec![0u8; 2048];
        assert!(err(&marked(8, &z), &Expect { need: 2048, ..e }, &mut small)
            .unwrap_err()
            .contains("more than one grain"));
        let half = zlib(&grain[..1000]);
        assert!(err(&marked(8, &half), &e, &mut out)
            .unwrap_err()
            .contains("short of"));
        assert!(err(&marked(8, &[0xff; 64]), &e, &mut out)
            .unwrap_err()
            .contains("corrupt"));
    }
}
