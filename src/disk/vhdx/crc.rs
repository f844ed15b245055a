//! CRC-32C (Castagnoli), the checksum of every VHDX header, region table and log entry:
//! reflected polynomial 0x82F63B78, initial value and final XOR all ones.

const POLY: u32 = 0x82F6_3B78;

const fn table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { POLY ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static TABLE: [u32; 256] = table();

/// CRC-32C of `b` with the 4 bytes at `skip..skip + 4` (the stored checksum) taken as zero.
pub fn crc32c_skipping(b: &[u8], skip: usize) -> u32 {
    let mut c = !0u32;
    for (i, &x) in b.iter().enumerate() {
        let x = if (skip..skip + 4).contains(&i) { 0 } else { x };
        c = TABLE[((c ^ x as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// Whether the little-endian checksum stored at `at` in `b` is the CRC-32C of `b`.
pub fn valid(b: &[u8], at: usize) -> bool {
    b.get(at..at + 4)
        .is_some_and(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) == crc32c_skipping(b, at))
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_value() {
        // The standard check value of CRC-32C.
        assert_eq!(
            super::crc32c_skipping(b"123456789", usize::MAX - 8),
            0xE306_9283
        );
    }
}
