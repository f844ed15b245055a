//! `NAME:PERCENT[:SIZE]` pool arguments, SIZE a replica count or `k+m` for erasure coding.
use crate::error::{Error, Result};
use serde::Serialize;

/// Replicated or erasure-coded pool size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum PoolSize {
    /// Number of replicas.
    Replicated(u32),
    /// Data and coding chunks.
    Erasure {
        /// Data chunks.
        k: u32,
        /// Coding chunks.
        m: u32,
    },
}

impl PoolSize {
    /// Parses `3` or `4+2`.
    pub fn parse(text: &str) -> Result<PoolSize> {
        let bad = || {
            Error::InvalidInput(format!(
                "invalid pool size '{text}': use a replica count (e.g. 3) or k+m (e.g. 4+2)"
            ))
        };
        let num = |s: &str| {
            s.trim()
                .parse::<u32>()
                .ok()
                .filter(|&n| (1..=64).contains(&n))
        };
        match text.split_once('+') {
            Some((k, m)) => Ok(PoolSize::Erasure {
                k: num(k).ok_or_else(bad)?,
                m: num(m).ok_or_else(bad)?,
            }),
            None => Ok(PoolSize::Replicated(num(text).ok_or_else(bad)?)),
        }
    }

    /// Replicas or k+m: the PG replicas each PG places.
    pub fn size(&self) -> u32 {
        match *self {
            PoolSize::Replicated(n) => n,
            PoolSize::Erasure { k, m } => k + m,
        }
    }

    /// Fraction of raw space that holds data: 1/size or k/(k+m).
    pub fn efficiency(&self) -> f64 {
        match *self {
            PoolSize::Replicated(n) => 1.0 / n as f64,
            PoolSize::Erasure { k, m } => k as f64 / (k + m) as f64,
        }
    }

    /// `replicated` or `erasure 4+2`.
    pub fn kind(&self) -> String {
        match *self {
            PoolSize::Replicated(_) => "replicated".into(),
            PoolSize::Erasure { k, m } => format!("erasure {k}+{m}"),
        }
    }

    /// The command that creates such a pool.
    pub fn create_command(&self, name: &str, pg_num: u32) -> String {
        match *self {
            PoolSize::Replicated(n) => {
                format!("ceph osd pool create {name} {pg_num} {pg_num} replicated && ceph osd pool set {name} size {n}")
            }
            PoolSize::Erasure { k, m } => format!(
                "ceph osd erasure-code-profile set ec-{k}-{m} k={k} m={m} && ceph osd pool create {name} {pg_num} {pg_num} erasure ec-{k}-{m}"
            ),
        }
    }
}

/// A pool and its expected share of the data.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PoolSpec {
    /// Pool name.
    pub name: String,
    /// Percent of the cluster's data.
    pub percent: f64,
    /// Size.
    pub size: PoolSize,
}

impl PoolSpec {
    /// Parses `NAME:PERCENT[:SIZE]`, with `default_size` when SIZE is left out.
    pub fn parse(text: &str, default_size: PoolSize) -> Result<PoolSpec> {
        let bad = |why: &str| {
            Error::InvalidInput(format!("invalid pool '{text}': {why}; use NAME:PERCENT[:SIZE], e.g. volumes:53:3 or ec:20:4+2"))
        };
        let parts: Vec<&str> = text.split(':').collect();
        let (name, pct, size) = match parts.as_slice() {
            [n, p] => (*n, *p, None),
            [n, p, s] => (*n, *p, Some(*s)),
            _ => return Err(bad("wrong number of fields")),
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(bad("empty or blank name"));
        }
        let percent: f64 = pct
            .trim()
            .trim_end_matches('%')
            .parse()
            .map_err(|_| bad("percent is not a number"))?;
        if !(percent > 0.0 && percent <= 100.0) {
            return Err(bad("percent must be above 0 and at most 100"));
        }
        let size = match size {
            Some(s) => PoolSize::parse(s)?,
            None => default_size,
        };
        Ok(PoolSpec {
            name: name.to_string(),
            percent,
            size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pool_specs() {
        let p = PoolSpec::parse("volumes:53", PoolSize::Replicated(3)).unwrap();
        assert_eq!(
            (p.name.as_str(), p.percent, p.size.size()),
            ("volumes", 53.0, 3)
        );
        let e = PoolSpec::parse("ec:20:4+2", PoolSize::Replicated(3)).unwrap();
        assert_eq!(e.size, PoolSize::Erasure { k: 4, m: 2 });
        assert!((e.size.efficiency() - 4.0 / 6.0).abs() < 1e-9);
        for bad in [
            "x", "x:0", "x:101", "x:a", ":5", "x:5:0", "x:5:4+", "x:5:3:1",
        ] {
            let e = PoolSpec::parse(bad, PoolSize::Replicated(3))
                .unwrap_err()
                .to_string();
            assert!(e.contains(bad) || e.contains("pool size"), "{bad}: {e}");
        }
    }
}
