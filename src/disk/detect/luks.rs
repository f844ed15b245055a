//! LUKS: magic "LUKS\xba\xbe" and a big-endian version. LUKS1's payload offset (in 512-byte
//! sectors) gives the virtual size qemu-img reports: the file size less the payload offset.
//! LUKS2 keeps its layout in a JSON area this does not parse; `format_inspector` accepts LUKS1
//! only, so LUKS2 (or any other version) is unsafe.
use super::{be16, be32, Container, Found, Input};
use crate::error::Result;

const MAGIC: &[u8; 6] = b"LUKS\xba\xbe";

/// Matches a LUKS header at offset 0.
pub(super) fn inspect(input: &Input) -> Result<Option<Found>> {
    let h = input.head();
    if !h.starts_with(MAGIC) {
        return Ok(None);
    }
    let mut f = Found::new(Container::Luks);
    match be16(h, 6) {
        Some(1) => {
            f.subformat = Some("luks1".into());
            match be32(h, 104) {
                Some(sectors) => {
                    let payload = u64::from(sectors) * 512;
                    f.virtual_size = input.size().and_then(|s| s.checked_sub(payload));
                    if input.size().is_some_and(|s| s < payload) {
                        f.unsafe_because("LUKS payload offset lies past the end of the file");
                    }
                }
                None => f.unsafe_because("LUKS header is truncated"),
            }
        }
        Some(2) => {
            f.subformat = Some("luks2".into());
            f.unsafe_because("LUKS version 2: only LUKS1 is accepted");
        }
        Some(v) => f.unsafe_because(format!("LUKS version {v} is unknown")),
        None => f.unsafe_because("LUKS header is truncated"),
    }
    Ok(Some(f))
}

#[cfg(test)]
mod tests {
    use super::super::{probe, probe_head, Container};

    fn header(version: u16, payload_sectors: u32, size: usize) -> Vec<u8> {
        let mut h = vec![0u8; size];
        h[..6].copy_from_slice(super::MAGIC);
        h[6..8].copy_from_slice(&version.to_be_bytes());
        h[104..108].copy_from_slice(&payload_sectors.to_be_bytes());
        h
    }

    #[test]
    fn luks1_size_is_file_less_payload() {
        let p = probe(&header(1, 8, 8192)).unwrap();
        assert_eq!(p.container, Container::Luks);
        assert_eq!(p.subformat.as_deref(), Some("luks1"));
        assert_eq!(p.virtual_size, Some(4096));
        assert!(p.unsafe_reasons.is_empty());
        // A stream does not know the file size.
        assert_eq!(probe_head(&header(1, 8, 8192)).virtual_size, None);
        let p = probe(&header(1, u32::MAX, 4096)).unwrap();
        assert_eq!((p.virtual_size, p.unsafe_reasons.len()), (None, 1));
    }

    #[test]
    fn luks2_and_truncated_are_unsafe() {
        let p = probe_head(&header(2, 0, 4096));
        assert_eq!(p.subformat.as_deref(), Some("luks2"));
        assert_eq!(p.unsafe_reasons.len(), 1);
        for n in 6..108 {
            let p = probe_head(&header(1, 8, 4096)[..n]);
            assert_eq!(p.container, Container::Luks);
            assert_eq!(p.unsafe_reasons.len(), 1, "{n}");
        }
    }
}
