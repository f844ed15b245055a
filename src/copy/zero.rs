//! Zero detection: which `sparse_size` blocks of a buffer hold any non-zero byte.
//! Zeros are never written into a fresh target, so this runs on every byte we copy.

/// True when every byte of `buf` is zero.
pub fn is_zero(buf: &[u8]) -> bool {
    // SAFETY: u128 has no invalid bit patterns, so viewing aligned bytes as u128 is sound.
    let (head, body, tail) = unsafe { buf.align_to::<u128>() };
    head.iter().all(|&b| b == 0) && body.iter().all(|&w| w == 0) && tail.iter().all(|&b| b == 0)
}

/// Runs of non-zero blocks in `buf`, as `(start, len)` byte ranges, adjacent blocks merged.
/// Blocks are `block` bytes (the last may be shorter); a block with any non-zero byte is data.
pub fn nonzero_runs(buf: &[u8], block: usize) -> Vec<(usize, usize)> {
    let block = block.max(1);
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, chunk) in buf.chunks(block).enumerate() {
        if is_zero(chunk) {
            continue;
        }
        let start = i * block;
        match runs.last_mut() {
            Some((s, l)) if *s + *l == start => *l += chunk.len(),
            _ => runs.push((start, chunk.len())),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_runs_at_block_granularity() {
        let mut buf = vec![0u8; 16384];
        assert!(nonzero_runs(&buf, 4096).is_empty());
        buf[5000] = 1;
        assert_eq!(nonzero_runs(&buf, 4096), vec![(4096, 4096)]);
        buf[16383] = 1;
        assert_eq!(nonzero_runs(&buf, 4096), vec![(4096, 4096), (12288, 4096)]);
        buf[8192] = 1;
        assert_eq!(nonzero_runs(&buf, 4096), vec![(4096, 12288)]);
    }

    #[test]
    fn odd_lengths_and_alignment() {
        let buf = [0u8, 0, 0, 7, 0];
        assert_eq!(nonzero_runs(&buf[1..], 2), vec![(2, 2)]);
        assert!(!is_zero(&buf[1..]));
        assert!(is_zero(&buf[..3]));
        assert!(is_zero(&[]));
    }
}
