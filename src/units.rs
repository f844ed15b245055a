//! Sizes and durations as people type them: `512M`, `20G`, `1T`, `4K` (binary units, parsed as the
//! rbd CLI parses them) and `10s`, `2m`, bare seconds. One place parses and formats them.
//!
//! Sizes follow ceph's `strict_iecstrtoll` (src/common/strtol.cc), which every size option of
//! `rbd` goes through: a whole number (an optional `+`, no sign otherwise), then nothing or an
//! upper-case unit `K`, `M`, `G`, `T`, `P`, `E` (powers of 1024) optionally followed by `i` or
//! `B` (`1G`, `1Gi`, `1GB` are the same), or `B` alone. Fractions (`1.5G`), exponents (`1e3`),
//! lower-case units (`4k`), `GiB`, negative numbers and spaces are refused, as rbd refuses them.
//! What a bare number counts depends on the option, as in rbd: an image size (`rbd create --size`,
//! [`parse_image_size`]) counts MiB, every other size ([`parse_size`]: `--object-size`,
//! `--sparse-size`, `rbd bench --io-size`) counts bytes.
//!
//! Where rbd is looser than its own rules we refuse instead of guessing: rbd reads only the
//! first letter of a unit (`1Kx` = 1 KiB, `1BB` = 1 byte), accepts `-0`, and lets a bare image
//! size wrap past 2^64 bytes (`17592186044416` MiB is a 0-byte image).
use crate::error::{Error, Result};
use std::time::Duration;

/// What a number without a unit counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bare {
    /// Bytes: rbd's `--object-size`, `--sparse-size`, `--stripe-unit`, bench `--io-size`.
    Bytes,
    /// MiB: rbd's image `--size` ("image size (in M/G/T) [default: M]").
    Mebibytes,
}

/// The unit letters rbd accepts and the power of two each stands for.
const UNITS: [(u8, u32); 7] = [
    (b'B', 0),
    (b'K', 10),
    (b'M', 20),
    (b'G', 30),
    (b'T', 40),
    (b'P', 50),
    (b'E', 60),
];

const HOW: &str = "use a whole number with an optional unit K, M, G, T, P or E, as rbd takes it (4K, 512M, 20G, 1T)";

fn invalid(text: &str, why: &str) -> Error {
    Error::InvalidInput(format!("invalid size '{text}': {why}"))
}

fn parse_iec(text: &str, bare: Bare) -> Result<u64> {
    let bytes = text.as_bytes();
    if text.is_empty() {
        return Err(invalid(text, HOW));
    }
    if bytes[0] == b'-' {
        return Err(invalid(text, "a size cannot be negative"));
    }
    // rbd's strtoll takes one leading '+'.
    let body = text.strip_prefix('+').unwrap_or(text);
    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(invalid(text, HOW));
    }
    let (num, unit) = body.split_at(digits);
    // rbd parses the number as a signed 64-bit integer: anything longer is out of range there.
    let n: u64 = num.parse::<i64>().map_err(|_| invalid(text, "too large"))? as u64;
    let shift = match unit.as_bytes() {
        [] => match bare {
            Bare::Bytes => 0,
            Bare::Mebibytes => 20,
        },
        [u] | [u, b'i' | b'B'] if *u != b'B' || unit.len() == 1 => {
            match UNITS.iter().find(|(c, _)| c == u) {
                Some((_, s)) => *s,
                None => return Err(invalid(text, &unit_hint(num, unit))),
            }
        }
        _ => return Err(invalid(text, &unit_hint(num, unit))),
    };
    let v = n.checked_shl(shift).filter(|v| v >> shift == n);
    v.ok_or_else(|| invalid(text, "too large (at most 15E, 2^64 - 1 bytes)"))
}

/// Why a unit is refused, with the spelling rbd takes where one is close.
fn unit_hint(num: &str, unit: &str) -> String {
    let mut chars = unit.chars();
    let first = chars.next().unwrap_or(' ');
    let rest = chars.as_str();
    if first == '.' || first == ',' {
        "a whole number is needed, rbd takes no fractions (1536M, not 1.5G)".into()
    } else if "kmgtpe".contains(first) && (rest.is_empty() || rest == "i" || rest == "B") {
        format!(
            "units are upper-case, as rbd takes them ({num}{}{rest})",
            first.to_ascii_uppercase()
        )
    } else if rest == "iB" && "KMGTPE".contains(first) {
        format!("rbd takes {num}{first} or {num}{first}i, not {num}{unit}")
    } else {
        HOW.into()
    }
}

/// Parses a byte size as rbd parses `--object-size`, `--sparse-size` or `rbd bench --io-size`:
/// a bare number is bytes (`4096`), a unit scales it (`4K`, `4Ki`, `4KB`: 4096).
pub fn parse_size(text: &str) -> Result<u64> {
    parse_iec(text, Bare::Bytes)
}

/// Parses an image size as `rbd create --size` / `rbd resize --size` parse it: a bare number is
/// MiB (`1024` is 1 GiB), a unit says otherwise (`20G`, `512K`, `4096B`). Zero is refused: no
/// command here has a use for an empty image.
pub fn parse_image_size(text: &str) -> Result<u64> {
    match parse_iec(text, Bare::Mebibytes)? {
        0 => Err(invalid(text, "an image size must be above 0")),
        n => Ok(n),
    }
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

    /// What rbd 16.2 answers for each string, asked of the real binary
    /// (`rbd create --size S nosuchpool/x`: "the argument ... is invalid" or a pool error;
    /// tests/size_cli.rs asks it again on every run), and the bytes it means as an image size
    /// (bare = MiB) and as an object size (bare = bytes). `None`: refused.
    const RBD: &[(&str, Option<u64>, Option<u64>)] = &[
        ("1024", Some(1 << 30), Some(1024)),
        ("1", Some(1 << 20), Some(1)),
        ("010", Some(10 << 20), Some(10)),
        ("+5", Some(5 << 20), Some(5)),
        ("1B", Some(1), Some(1)),
        ("4096B", Some(4096), Some(4096)),
        ("1K", Some(1 << 10), Some(1 << 10)),
        ("1KB", Some(1 << 10), Some(1 << 10)),
        ("1Ki", Some(1 << 10), Some(1 << 10)),
        ("512M", Some(512 << 20), Some(512 << 20)),
        ("1G", Some(1 << 30), Some(1 << 30)),
        ("1GB", Some(1 << 30), Some(1 << 30)),
        ("1Gi", Some(1 << 30), Some(1 << 30)),
        ("20G", Some(20 << 30), Some(20 << 30)),
        ("1T", Some(1 << 40), Some(1 << 40)),
        ("1P", Some(1 << 50), Some(1 << 50)),
        ("1E", Some(1 << 60), Some(1 << 60)),
        ("15E", Some(15 << 60), Some(15 << 60)),
        ("16E", None, None),
        ("9223372036854775808", None, None),
        ("-1", None, None),
        ("-1G", None, None),
        ("1k", None, None),
        ("1b", None, None),
        ("1KiB", None, None),
        ("1GiB", None, None),
        ("1Bi", None, None),
        ("1Z", None, None),
        ("1.5G", None, None),
        ("1.5", None, None),
        ("1e3", None, None),
        ("0x10", None, None),
        (" 5", None, None),
        ("5 ", None, None),
        ("", None, None),
        ("G", None, None),
    ];

    /// Strings rbd accepts only by accident and we refuse: rbd reads a unit's first letter
    /// alone, takes `-0`, and shifts a bare image size past 64 bits without noticing
    /// (`17592186044416` MiB is 2^64 bytes: rbd makes a 0-byte image).
    const RBD_LOOSER: &[&str] = &[
        "1Kx",
        "1KM",
        "1BB",
        "-0",
        "17592186044416",
        "9223372036854775807",
    ];

    #[test]
    fn parses_sizes_as_rbd_does() {
        for &(text, image, object) in RBD {
            let got = parse_image_size(text).ok();
            assert_eq!(got, image, "image size {text:?}");
            assert_eq!(parse_size(text).ok(), object, "object size {text:?}");
        }
        for text in RBD_LOOSER {
            assert!(parse_image_size(text).is_err(), "{text}");
        }
        assert_eq!(
            parse_image_size("17592186044415").unwrap(),
            u64::MAX - (1 << 20) + 1
        );
        assert_eq!(
            parse_size("0").unwrap(),
            0,
            "a byte count may be 0; callers decide"
        );
        assert_eq!(parse_size("9223372036854775807").unwrap(), i64::MAX as u64);
    }

    #[test]
    fn refusals_are_one_line_with_a_way_out() {
        let msg = |t: &str| parse_image_size(t).unwrap_err().to_string();
        assert!(msg("0").contains("above 0"), "{}", msg("0"));
        assert!(msg("-1").contains("negative"), "{}", msg("-1"));
        assert!(msg("1.5G").contains("1536M"), "{}", msg("1.5G"));
        assert!(msg("4k").contains("(4K)"), "{}", msg("4k"));
        assert!(msg("1GiB").contains("1G or 1Gi"), "{}", msg("1GiB"));
        assert!(msg("1e3").contains("512M"), "{}", msg("1e3"));
        assert!(msg("16E").contains("too large"), "{}", msg("16E"));
        for t in ["0", "-1", "1.5G", "4k", "1GiB", "1e3", "16E", "", "x"] {
            let m = msg(t);
            assert!(
                m.starts_with(&format!("invalid size '{t}'")) && !m.contains('\n'),
                "{m}"
            );
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
