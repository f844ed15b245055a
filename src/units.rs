//! Sizes and durations as people type them: `512M`, `20G`, `1T`, `4k` (binary units, as the rbd
//! CLI takes them) and `10s`, `2m`, bare seconds. One place parses and formats them.
use crate::error::{Error, Result};
use std::time::Duration;

const UNITS: [(char, u32); 6] = [
    ('K', 10),
    ('M', 20),
    ('G', 30),
    ('T', 40),
    ('P', 50),
    ('E', 60),
];

/// Parses a byte size: a plain number of bytes, or a number with a binary suffix
/// `K/M/G/T/P/E` (case-insensitive, optional trailing `B` or `iB`), e.g. `512M`, `20G`, `4k`, `1.5G`.
pub fn parse_size(text: &str) -> Result<u64> {
    let bad = || {
        Error::InvalidInput(format!(
            "invalid size '{text}': use a number of bytes or a binary unit such as 4K, 512M, 20G, 1T"
        ))
    };
    let t = text.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix("ib"))
        .unwrap_or(t);
    let t = t.strip_suffix(['B', 'b']).unwrap_or(t);
    let (num, shift) = match t.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => {
            let up = c.to_ascii_uppercase();
            let shift = UNITS
                .iter()
                .find(|(u, _)| *u == up)
                .map(|(_, s)| *s)
                .ok_or_else(bad)?;
            (&t[..t.len() - 1], shift)
        }
        _ => (t, 0),
    };
    if num.is_empty() || num.starts_with(['-', '+']) {
        return Err(bad());
    }
    if let Ok(n) = num.parse::<u64>() {
        return n
            .checked_shl(shift)
            .filter(|v| v >> shift == n)
            .ok_or_else(bad);
    }
    // Fractions ("1.5G") are allowed when they come out to whole bytes.
    let f: f64 = num.parse().map_err(|_| bad())?;
    let bytes = f * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 || bytes.fract() != 0.0 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// Formats bytes with the largest binary unit that keeps it readable: `1 GiB`, `1.5 MiB`, `512 B`.
pub fn format_size(bytes: u64) -> String {
    const NAMES: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut unit = 0;
    while unit + 1 < NAMES.len() && bytes >= 1u64 << (10 * (unit + 1)) {
        unit += 1;
    }
    if unit == 0 {
        return format!("{bytes} B");
    }
    let value = bytes as f64 / (1u64 << (10 * unit)) as f64;
    if value.fract() == 0.0 {
        format!("{value:.0} {}", NAMES[unit])
    } else {
        format!("{value:.2} {}", NAMES[unit]).replace(".00 ", " ")
    }
}

/// Parses a duration: bare seconds (`30`, `0.5`) or with a unit `ms`, `s`, `m`, `h`.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let bad = || {
        Error::InvalidInput(format!(
            "invalid duration '{text}': use e.g. 500ms, 10s, 2m, 1h or bare seconds"
        ))
    };
    let t = text.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    if !v.is_finite() || v < 0.0 || v * scale > 1e9 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(v * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_units_like_rbd() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("4k").unwrap(), 4096);
        assert_eq!(parse_size("4K").unwrap(), 4096);
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("20G").unwrap(), 20 << 30);
        assert_eq!(parse_size("1T").unwrap(), 1 << 40);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("1GB").unwrap(), 1 << 30);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
    }

    #[test]
    fn rejects_garbage_and_overflow() {
        for bad in [
            "",
            "G",
            "-1G",
            "1X",
            "abc",
            "16E",
            "99999999999999999999",
            "0.3",
            "1.2.3M",
        ] {
            let e = parse_size(bad).unwrap_err().to_string();
            assert!(e.contains("invalid size"), "{bad}: {e}");
        }
    }

    #[test]
    fn formats_readably() {
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(1 << 30), "1 GiB");
        assert_eq!(format_size(3 << 19), "1.50 MiB");
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
