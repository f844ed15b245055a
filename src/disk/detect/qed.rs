//! QED (QEMU enhanced disk): magic "QED\0", the image size and cluster size, and the backing
//! file name. `format_inspector` bans QED outright (no one supports it), so every QED is
//! reported unsafe; a backing file is a second reason.
use super::{le32, le64, name_text, Container, Found, Input};
use crate::error::Result;

/// Header feature bit: the image has a backing file.
const F_BACKING_FILE: u64 = 1;
/// The header fields this reads end here.
const HEADER_LEN: usize = 64;

/// Matches a QED header at offset 0.
pub(super) fn inspect(input: &Input) -> Result<Option<Found>> {
    let h = input.head();
    if !h.starts_with(b"QED\0") {
        return Ok(None);
    }
    let mut f = Found::new(Container::Qed);
    f.unsafe_because("QED images are refused outright (format_inspector bans the format)");
    if h.len() < HEADER_LEN {
        f.unsafe_because("QED header is truncated");
        return Ok(Some(f));
    }
    let cluster = le32(h, 4).unwrap_or(0);
    // qemu: a power of two from 4 KiB to 64 MiB.
    if cluster.is_power_of_two() && (4096..=64 << 20).contains(&cluster) {
        f.cluster_size = Some(cluster.into());
    } else {
        f.unsafe_because(format!("QED cluster size {cluster} is invalid"));
    }
    f.virtual_size = le64(h, 48);
    let features = le64(h, 16).unwrap_or(0);
    if features & F_BACKING_FILE != 0 {
        let off = le32(h, 56).unwrap_or(0);
        let len = le32(h, 60).unwrap_or(0) as usize;
        f.unsafe_because("QED image has a backing file");
        match input.read(off.into(), len.min(super::MAX_NAME))? {
            Some(name) if len > 0 => f.backing_file = Some(name_text(&name)),
            _ => f.unsafe_because(format!(
                "QED backing file name ({len} bytes at offset {off}) is not in the file"
            )),
        }
    }
    Ok(Some(f))
}

#[cfg(test)]
mod tests {
    use super::super::{probe, probe_head, Container};

    fn header(features: u64, name: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..4].copy_from_slice(b"QED\0");
        h[4..8].copy_from_slice(&65536u32.to_le_bytes());
        h[16..24].copy_from_slice(&features.to_le_bytes());
        h[48..56].copy_from_slice(&(10u64 << 20).to_le_bytes());
        h[56..60].copy_from_slice(&200u32.to_le_bytes());
        h[60..64].copy_from_slice(&(name.len() as u32).to_le_bytes());
        h[200..200 + name.len()].copy_from_slice(name);
        h
    }

    #[test]
    fn size_cluster_and_backing_file() {
        let p = probe_head(&header(0, b""));
        assert_eq!(p.container, Container::Qed);
        assert_eq!(p.virtual_size, Some(10 << 20));
        assert_eq!(p.cluster_size, Some(65536));
        assert_eq!(p.backing_file, None);
        assert_eq!(p.unsafe_reasons.len(), 1, "{:?}", p.unsafe_reasons);
        let p = probe(&header(1, b"/etc/passwd")).unwrap();
        assert_eq!(p.backing_file.as_deref(), Some("/etc/passwd"));
        assert_eq!(p.unsafe_reasons.len(), 2, "{:?}", p.unsafe_reasons);
        assert!(p.unsafe_reasons.iter().all(|r| !r.contains("passwd")));
    }

    #[test]
    fn hostile_headers() {
        let mut h = header(1, b"x");
        h[56..60].copy_from_slice(&u32::MAX.to_le_bytes());
        h[60..64].copy_from_slice(&u32::MAX.to_le_bytes());
        h[4..8].copy_from_slice(&3u32.to_le_bytes());
        let p = probe(&h).unwrap();
        assert_eq!((p.backing_file, p.cluster_size), (None, None));
        assert_eq!(p.unsafe_reasons.len(), 4, "{:?}", p.unsafe_reasons);
        assert_eq!(probe_head(b"QED\0").container, Container::Qed);
    }
}
