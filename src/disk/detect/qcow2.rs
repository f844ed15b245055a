//! qcow2 by its magic, "QFI\xfb", with the virtual size and cluster size from the first 32
//! header bytes. Nothing else: the qcow2 reader validates the header, backing file and data
//! file before it reads anything.
use super::{be32, be64, Container, Found, Input};
use crate::disk::QCOW2_MAGIC;
use crate::error::Result;

/// Matches a qcow2 header at offset 0.
pub(super) fn inspect(input: &Input) -> Result<Option<Found>> {
    let h = input.head();
    if !h.starts_with(&QCOW2_MAGIC) {
        return Ok(None);
    }
    let mut f = Found::new(Container::Qcow2);
    f.virtual_size = be64(h, 24);
    // qemu accepts cluster_bits 9..=21 (512 B to 2 MiB); outside that the reader refuses it.
    f.cluster_size = be32(h, 20)
        .filter(|b| (9..=21).contains(b))
        .map(|b| 1u64 << b);
    Ok(Some(f))
}

#[cfg(test)]
mod tests {
    use super::super::probe_head;
    use super::super::Container;

    #[test]
    fn magic_size_and_cluster_bits() {
        let mut h = vec![0u8; 72];
        h[..4].copy_from_slice(b"QFI\xfb");
        h[4..8].copy_from_slice(&3u32.to_be_bytes());
        h[20..24].copy_from_slice(&16u32.to_be_bytes());
        h[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes());
        let p = probe_head(&h);
        assert_eq!(p.container, Container::Qcow2);
        assert_eq!(p.virtual_size, Some(1 << 30));
        assert_eq!(p.cluster_size, Some(65536));
        // Truncated right after the magic: still qcow2 (the reader refuses it), no facts.
        let p = probe_head(b"QFI\xfb\0\0");
        assert_eq!(p.container, Container::Qcow2);
        assert_eq!((p.virtual_size, p.cluster_size), (None, None));
        h[20..24].copy_from_slice(&40u32.to_be_bytes());
        assert_eq!(probe_head(&h).cluster_size, None);
    }
}
