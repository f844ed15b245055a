//! Which Ceph release a plan or check models. The autoscaler (mgr `pg_autoscaler`) and the
//! monitor's pool-create check (`OSDMonitor::check_pg_num`) differ between releases, so every
//! number rbdkit predicts is tied to one release, named in the output.
use crate::error::{Error, Result};
use serde::Serialize;

/// A Ceph release whose autoscaler and monitor rules rbdkit models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CephRelease {
    /// 16.2.x as of 16.2.15 (Debian 12): three-pass autoscaler, stored × rate usage, a fixed
    /// threshold of 3, the monitor counting every pool against all in OSDs.
    Pacific,
    /// 17.2.x: three-pass autoscaler reading raw `bytes_used`, a `threshold` module option,
    /// the `noautoscale` OSD map flag; the monitor counts per CRUSH rule.
    Quincy,
    /// 18.2.x: as modelled, the same rules as quincy.
    Reef,
    /// 19.2.x: as modelled, the same rules as quincy.
    Squid,
    /// 20.2.x (Debian 14's 20.2.4): reef's rules plus a dynamic threshold for growing a pool
    /// (see [`CephRelease::grow_threshold`]).
    Tentacle,
}

impl CephRelease {
    /// Parses `pacific`, `quincy`, `reef`, `squid`, `tentacle` (or their major numbers 16..=20).
    pub fn parse(text: &str) -> Result<CephRelease> {
        match text.trim().to_ascii_lowercase().as_str() {
            "pacific" | "16" => Ok(CephRelease::Pacific),
            "quincy" | "17" => Ok(CephRelease::Quincy),
            "reef" | "18" => Ok(CephRelease::Reef),
            "squid" | "19" => Ok(CephRelease::Squid),
            "tentacle" | "20" => Ok(CephRelease::Tentacle),
            _ => Err(Error::InvalidInput(format!(
                "unknown Ceph release '{text}': use pacific, quincy, reef, squid or tentacle"
            ))),
        }
    }

    /// The release of a `ceph --version` / `ceph version` line such as
    /// `ceph version 16.2.15 (618f...) pacific (stable)`: by major version, so a build that
    /// renamed itself still maps. None for releases rbdkit does not model.
    pub fn from_version_text(text: &str) -> Option<CephRelease> {
        let version = text
            .split_whitespace()
            .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()) && w.contains('.'))?;
        let major: u32 = version.split('.').next()?.parse().ok()?;
        match major {
            16 => Some(CephRelease::Pacific),
            17 => Some(CephRelease::Quincy),
            18 => Some(CephRelease::Reef),
            19 => Some(CephRelease::Squid),
            20 => Some(CephRelease::Tentacle),
            _ => None,
        }
    }

    /// Lower-case name.
    pub fn name(&self) -> &'static str {
        match self {
            CephRelease::Pacific => "pacific",
            CephRelease::Quincy => "quincy",
            CephRelease::Reef => "reef",
            CephRelease::Squid => "squid",
            CephRelease::Tentacle => "tentacle",
        }
    }

    /// Whether the monitor counts PGs per CRUSH rule and its root's OSDs (quincy and later)
    /// rather than over every pool and every in OSD (pacific).
    pub fn mon_checks_per_rule(&self) -> bool {
        *self != CephRelease::Pacific
    }

    /// The factor a pool's new target must exceed its current pg_num by before the autoscaler
    /// grows it. Tentacle's module grows a pool whose target is 512 or 1024 on any increase and
    /// one of 2048 on a doubling (its `get_dynamic_threshold`, for scaling up only), so pools
    /// do not stay stuck below the sizes that matter most; shrinking keeps `threshold`.
    pub fn grow_threshold(&self, final_pg: i64, threshold: f64) -> f64 {
        match (self, final_pg) {
            (CephRelease::Tentacle, 512 | 1024) => 1.0,
            (CephRelease::Tentacle, 2048) => 2.0,
            _ => threshold,
        }
    }

    /// Whether the autoscaler takes a pool's usage from the raw `bytes_used` (quincy and later)
    /// rather than `stored` × raw used rate (pacific).
    pub fn autoscaler_uses_bytes_used(&self) -> bool {
        *self != CephRelease::Pacific
    }
}

impl std::fmt::Display for CephRelease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_version_lines() {
        assert_eq!(CephRelease::parse("Reef").unwrap(), CephRelease::Reef);
        assert!(CephRelease::parse("octopus").is_err());
        assert_eq!(
            CephRelease::from_version_text(
                "ceph version 16.2.15 (618f440892089921c3e944a991122ddc44e60516) pacific (stable)"
            ),
            Some(CephRelease::Pacific)
        );
        assert_eq!(
            CephRelease::from_version_text("ceph version 19.2.1 (abc) squid (stable)"),
            Some(CephRelease::Squid)
        );
        assert_eq!(CephRelease::from_version_text("ceph version 15.2.17"), None);
        assert_eq!(CephRelease::from_version_text("garbage"), None);
    }
}
