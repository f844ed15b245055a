//! `NAME:PERCENT[:SIZE][:KEY=VALUE,...]` pool arguments, SIZE a replica count or `k+m` for
//! erasure coding, the options those the autoscaler reads from a pool (see [`PoolOptions`]).
use super::autoscale::AutoscaleMode;
use crate::error::{Error, Result};
use crate::units::parse_size;
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

    /// Raw bytes per stored byte, as `OSDMap::pool_raw_used_rate`: size, or (k+m)/k.
    pub fn raw_used_rate(&self) -> f64 {
        1.0 / self.efficiency()
    }
}

/// What the autoscaler reads from a pool besides its size, given after the pool's fields as
/// `KEY=VALUE` pairs separated by commas: `volumes:53:3:bulk,bias=2,pg_num_min=64`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PoolOptions {
    /// `bulk` (or `bulk=true`): the pool is sized for its full share from the start.
    pub bulk: bool,
    /// `bias=F`: `pg_autoscale_bias`.
    pub bias: Option<f64>,
    /// `target_size_ratio=F` (or `ratio=F`): overrides the percentage for the autoscaler.
    pub target_size_ratio: Option<f64>,
    /// `target_size_bytes=SIZE` (or `bytes=SIZE`): expected logical bytes.
    pub target_size_bytes: Option<u64>,
    /// `pg_num_min=N`.
    pub pg_num_min: Option<u32>,
    /// `pg_num_max=N`.
    pub pg_num_max: Option<u32>,
    /// `root=NAME`: the CRUSH root (declared with `--root NAME:OSDS`); `default` otherwise.
    pub root: Option<String>,
    /// `mode=on|warn|off`: `pg_autoscale_mode`.
    pub mode: Option<AutoscaleMode>,
    /// `stored=SIZE`: logical bytes already stored.
    pub stored: Option<u64>,
    /// `pg_num=N`: the pool's current pg_num, for the 3x threshold.
    pub pg_num: Option<u32>,
    /// `target_pgs_per_osd=N` (or `target=N`): PGCalc's per-row "Target PGs per OSD", in place
    /// of `--target-pgs-per-osd` for this pool. PGCalc only: the autoscaler has one target.
    pub target_pgs_per_osd: Option<u32>,
}

impl PoolOptions {
    /// Parses `KEY=VALUE[,KEY=VALUE...]`.
    pub fn parse(text: &str) -> Result<PoolOptions> {
        let mut o = PoolOptions::default();
        for item in text.split(',').filter(|s| !s.is_empty()) {
            let (key, value) = item.split_once('=').unwrap_or((item, ""));
            let bad =
                |why: &str| Error::InvalidInput(format!("invalid pool option '{item}': {why}"));
            let float = || -> Result<f64> {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| bad("not a number of 0 or more"))
            };
            let count = || -> Result<u32> {
                value
                    .parse::<u32>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| bad("not a whole number of 1 or more"))
            };
            let size = || parse_size(value).map_err(|e| bad(&e.to_string()));
            match key {
                "bulk" => {
                    o.bulk = match value {
                        "" | "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(bad("use bulk, bulk=true or bulk=false")),
                    }
                }
                "bias" => o.bias = Some(float().and_then(|b| if b > 0.0 { Ok(b) } else { Err(bad("must be above 0")) })?),
                "target_size_ratio" | "ratio" => o.target_size_ratio = Some(float()?),
                "target_size_bytes" | "bytes" => o.target_size_bytes = Some(size()?),
                "pg_num_min" => o.pg_num_min = Some(count()?),
                "pg_num_max" => o.pg_num_max = Some(count()?),
                "root" if !value.is_empty() => o.root = Some(value.to_string()),
                "mode" => o.mode = Some(AutoscaleMode::parse(value).ok_or_else(|| bad("use on, warn or off"))?),
                "stored" => o.stored = Some(size()?),
                "pg_num" => o.pg_num = Some(count()?),
                "target_pgs_per_osd" | "target" => o.target_pgs_per_osd = Some(count()?),
                _ => {
                    return Err(bad(
                        "known keys: bulk, bias, target_size_ratio (ratio), target_size_bytes (bytes), pg_num_min, pg_num_max, root, mode, stored, pg_num, target_pgs_per_osd (target)",
                    ))
                }
            }
        }
        Ok(o)
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
    /// Autoscaler options.
    pub options: PoolOptions,
}

impl PoolSpec {
    /// Parses `NAME:PERCENT[:SIZE][:OPTIONS]`, with `default_size` when SIZE is left out.
    pub fn parse(text: &str, default_size: PoolSize) -> Result<PoolSpec> {
        let bad = |why: &str| {
            Error::InvalidInput(format!("invalid pool '{text}': {why}; use NAME:PERCENT[:SIZE][:KEY=VALUE,...], e.g. volumes:53:3 or ec:20:4+2 or vms:15:3:bulk,bias=2"))
        };
        let parts: Vec<&str> = text.split(':').collect();
        // A third field with '=' or `bulk` is options (the size left at its default).
        let is_opts = |s: &str| s.contains('=') || s.starts_with("bulk");
        let (name, pct, size, opts) = match parts.as_slice() {
            [n, p] => (*n, *p, None, None),
            [n, p, o] if is_opts(o) => (*n, *p, None, Some(*o)),
            [n, p, s] => (*n, *p, Some(*s), None),
            [n, p, s, o] => (*n, *p, Some(*s), Some(*o)),
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
        // PGCalc takes 0 (an empty pool gets its minimum) and marks anything above 100 an error.
        if !(0.0..=100.0).contains(&percent) {
            return Err(bad("percent must be from 0 to 100"));
        }
        let size = match size {
            Some(s) => PoolSize::parse(s)?,
            None => default_size,
        };
        let options = match opts {
            Some(o) => PoolOptions::parse(o).map_err(|e| bad(&e.to_string()))?,
            None => PoolOptions::default(),
        };
        Ok(PoolSpec {
            name: name.to_string(),
            percent,
            size,
            options,
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
        let o = PoolSpec::parse("vms:15:2:bulk,bias=2,ratio=0.2,bytes=1T,pg_num_min=64,pg_num_max=512,root=ssd,mode=warn,stored=5G,pg_num=8,target=200", PoolSize::Replicated(3)).unwrap();
        assert_eq!(o.size, PoolSize::Replicated(2));
        assert_eq!(
            o.options,
            PoolOptions {
                bulk: true,
                bias: Some(2.0),
                target_size_ratio: Some(0.2),
                target_size_bytes: Some(1 << 40),
                pg_num_min: Some(64),
                pg_num_max: Some(512),
                root: Some("ssd".into()),
                mode: Some(AutoscaleMode::Warn),
                stored: Some(5 << 30),
                pg_num: Some(8),
                target_pgs_per_osd: Some(200),
            }
        );
        // PGCalc's empty pool: 0 % is a share, not an error.
        assert_eq!(
            PoolSpec::parse("x:0", PoolSize::Replicated(3))
                .unwrap()
                .percent,
            0.0
        );
        let d = PoolSpec::parse("vms:15:bulk", PoolSize::Replicated(3)).unwrap();
        assert!(d.options.bulk && d.size == PoolSize::Replicated(3));
        for bad in [
            "x",
            "x:-1",
            "x:101",
            "x:5:target=0",
            "x:a",
            ":5",
            "x:5:0",
            "x:5:4+",
            "x:5:3:1",
            "x:5:3:bias=0",
            "x:5:mode=sometimes",
            "x:5:3:colour=red",
            "x:5:3:bulk,pg_num_min=0",
            "x:5:3:a:b",
        ] {
            let e = PoolSpec::parse(bad, PoolSize::Replicated(3))
                .unwrap_err()
                .to_string();
            assert!(e.contains(bad) || e.contains("pool size"), "{bad}: {e}");
        }
    }
}
