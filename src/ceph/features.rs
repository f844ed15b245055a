//! RBD image feature bits: names as `rbd` prints them, and what a kernel client can map.
use crate::error::{Error, Result};
use librbd_sys as sys;

/// A feature bit mask (`RBD_FEATURE_*`).
pub type Features = u64;

const NAMES: [(u64, &str); 12] = [
    (sys::RBD_FEATURE_LAYERING as u64, "layering"),
    (sys::RBD_FEATURE_STRIPINGV2 as u64, "striping"),
    (sys::RBD_FEATURE_EXCLUSIVE_LOCK as u64, "exclusive-lock"),
    (sys::RBD_FEATURE_OBJECT_MAP as u64, "object-map"),
    (sys::RBD_FEATURE_FAST_DIFF as u64, "fast-diff"),
    (sys::RBD_FEATURE_DEEP_FLATTEN as u64, "deep-flatten"),
    (sys::RBD_FEATURE_JOURNALING as u64, "journaling"),
    (sys::RBD_FEATURE_DATA_POOL as u64, "data-pool"),
    (sys::RBD_FEATURE_OPERATIONS as u64, "operations"),
    (sys::RBD_FEATURE_MIGRATING as u64, "migrating"),
    (sys::RBD_FEATURE_NON_PRIMARY as u64, "non-primary"),
    (sys::RBD_FEATURE_DIRTY_CACHE as u64, "dirty-cache"),
];

/// Features the Linux kernel client (krbd) maps. Everything else makes `rbd map` fail with
/// "image uses unsupported features" on older kernels; journaling is never supported.
const KRBD_SUPPORTED: u64 = sys::RBD_FEATURE_LAYERING as u64
    | sys::RBD_FEATURE_STRIPINGV2 as u64
    | sys::RBD_FEATURE_EXCLUSIVE_LOCK as u64
    | sys::RBD_FEATURE_OBJECT_MAP as u64
    | sys::RBD_FEATURE_FAST_DIFF as u64
    | sys::RBD_FEATURE_DEEP_FLATTEN as u64
    | sys::RBD_FEATURE_DATA_POOL as u64
    | sys::RBD_FEATURE_OPERATIONS as u64;

/// Feature names in bit order, as `rbd info` lists them.
pub fn feature_names(features: Features) -> Vec<String> {
    NAMES
        .iter()
        .filter(|(bit, _)| features & bit != 0)
        .map(|(_, n)| n.to_string())
        .collect()
}

/// Parses one feature name (`layering`, `exclusive-lock`, ...).
pub fn parse_feature(name: &str) -> Result<Features> {
    NAMES
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(bit, _)| *bit)
        .ok_or_else(|| {
            let all: Vec<&str> = NAMES.iter().map(|(_, n)| *n).collect();
            Error::InvalidInput(format!(
                "unknown image feature '{name}': use one of {}",
                all.join(", ")
            ))
        })
}

/// Features that only a recent kernel (5.3+ for object-map/fast-diff/deep-flatten,
/// 4.9+ for exclusive-lock) or no kernel at all (journaling) can map. Layering alone maps
/// everywhere, which is why rbdkit creates layering-only images by default.
pub fn krbd_unsupported(features: Features) -> Vec<String> {
    let mut out = feature_names(features & !KRBD_SUPPORTED);
    out.extend(
        feature_names(
            features
                & (sys::RBD_FEATURE_OBJECT_MAP as u64
                    | sys::RBD_FEATURE_FAST_DIFF as u64
                    | sys::RBD_FEATURE_DEEP_FLATTEN as u64)
                & KRBD_SUPPORTED,
        )
        .into_iter()
        .map(|n| format!("{n} (kernel 5.3+)")),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(
            feature_names(61),
            [
                "layering",
                "exclusive-lock",
                "object-map",
                "fast-diff",
                "deep-flatten"
            ]
        );
        assert_eq!(parse_feature("layering").unwrap(), 1);
        assert!(parse_feature("bogus")
            .unwrap_err()
            .to_string()
            .contains("layering"));
    }

    #[test]
    fn layering_is_krbd_safe_journaling_is_not() {
        assert!(krbd_unsupported(1).is_empty());
        assert_eq!(krbd_unsupported(1 | 64), ["journaling"]);
        assert_eq!(krbd_unsupported(1 | 8), ["object-map (kernel 5.3+)"]);
    }
}
