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
    let mut runs = Vec::new();
    push_nonzero_runs(buf, 0, buf.len(), block, &mut runs);
    runs
}

/// Appends to `runs` the non-zero blocks of `buf[start..start + len]`, blocks on the grid of
/// `block` counted from the start of `buf` (the first and last may be partial), merging with
/// the last run when adjacent. Runs are `(start, len)` in `buf`'s offsets.
pub fn push_nonzero_runs(
    buf: &[u8],
    start: usize,
    len: usize,
    block: usize,
    runs: &mut Vec<(usize, usize)>,
) {
    let block = block.max(1);
    let end = start + len;
    let mut pos = start;
    while pos < end {
        let next = ((pos / block + 1) * block).min(end);
        if !is_zero(&buf[pos..next]) {
            match runs.last_mut() {
                Some((s, l)) if *s + *l == pos => *l += next - pos,
                _ => runs.push((pos, next - pos)),
            }
        }
        pos = next;
    }
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

    #[test]
    fn partial_ranges_keep_the_block_grid_and_merge() {
        let mut buf = vec![0u8; 8192];
        buf[100] = 1;
        buf[4100] = 1;
        let mut runs = Vec::new();
        // Scanning [50, 4200) then [4200, 8192): blocks [50, 4096), [4096, 4200), [4200, 8192).
        push_nonzero_runs(&buf, 50, 4150, 4096, &mut runs);
        assert_eq!(runs, vec![(50, 4150)]);
        push_nonzero_runs(&buf, 4200, 3992, 4096, &mut runs);
        assert_eq!(runs, vec![(50, 4150)]);
        buf[5000] = 1;
        let mut runs = Vec::new();
        push_nonzero_runs(&buf, 4096, 4096, 4096, &mut runs);
        assert_eq!(runs, vec![(4096, 4096)]);
        assert_eq!(nonzero_runs(&buf, 4096), vec![(0, 8192)]);
    }
}
