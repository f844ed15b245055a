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

/// Features `rbd --image-feature` accepts by name, in bit order: everything `rbd info` can
/// print except `dirty-cache`, which `rbd` 16.2 refuses as an argument.
fn rbd_accepts(name: &str) -> bool {
    name != "dirty-cache" && NAMES.iter().any(|(_, n)| *n == name)
}

/// Features a user may ask for by name. The other names `rbd` accepts are set or cleared by
/// librbd itself and dropped silently when asked for, so rbdkit refuses them instead of
/// reporting a feature the image will not have.
pub(crate) const SETTABLE: u64 = sys::RBD_FEATURE_LAYERING as u64
    | sys::RBD_FEATURE_EXCLUSIVE_LOCK as u64
    | sys::RBD_FEATURE_OBJECT_MAP as u64
    | sys::RBD_FEATURE_FAST_DIFF as u64
    | sys::RBD_FEATURE_DEEP_FLATTEN as u64
    | sys::RBD_FEATURE_JOURNALING as u64;

const LAYERING: u64 = sys::RBD_FEATURE_LAYERING as u64;
const EXCLUSIVE_LOCK: u64 = sys::RBD_FEATURE_EXCLUSIVE_LOCK as u64;
const OBJECT_MAP: u64 = sys::RBD_FEATURE_OBJECT_MAP as u64;
const FAST_DIFF: u64 = sys::RBD_FEATURE_FAST_DIFF as u64;
const JOURNALING: u64 = sys::RBD_FEATURE_JOURNALING as u64;

/// Parses one feature name (`layering`, `exclusive-lock`, ...) of those `rbd` accepts.
pub fn parse_feature(name: &str) -> Result<Features> {
    if let Some((bit, _)) = NAMES.iter().find(|(_, n)| *n == name && rbd_accepts(n)) {
        return Ok(*bit);
    }
    let settable = feature_names(SETTABLE).join(",");
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
        // rbd 16.2 refuses numeric masks for --image-feature, so scripts cannot rely on them.
        return Err(Error::InvalidInput(format!(
            "--image-feature {name}: give feature names, as rbd does ({settable})"
        )));
    }
    Err(Error::InvalidInput(format!(
        "unknown image feature '{name}': use one of {settable}"
    )))
}

/// Parses `--image-feature` values as `rbd` does: repeatable, each a comma-separated list of
/// names, empty items skipped (`layering,` is `layering`).
pub fn parse_features<S: AsRef<str>>(values: &[S]) -> Result<Features> {
    let mut features = 0;
    for name in values.iter().flat_map(|v| v.as_ref().split(',')) {
        if !name.is_empty() {
            features |= parse_feature(name)?;
        }
    }
    Ok(features)
}

/// Refuses, before anything is created, a feature set librbd would refuse with a bare EINVAL
/// or ENOSYS, or would quietly change: fast-diff needs object-map, object-map and journaling
/// need exclusive-lock, a clone needs layering (`for_clone`), and striping, data-pool and the
/// internal features are librbd's to set. The message names the missing feature and the
/// `--image-feature` value that works.
pub fn check_requested(features: Features, for_clone: bool) -> Result<()> {
    if let Some(name) = feature_names(features & !SETTABLE).first() {
        let why = match name.as_str() {
            "striping" => "librbd sets it itself when --stripe-unit/--stripe-count differ from the object size; drop it and give those",
            "data-pool" => "librbd sets it itself for an image whose data lives in another pool; drop it and give --data-pool POOL",
            _ => "librbd controls it internally (rbd accepts the name and drops it); drop it",
        };
        return Err(Error::InvalidInput(format!(
            "image feature {name} cannot be asked for: {why}"
        )));
    }
    // What works: the request plus what it depends on. librbd adds fast-diff to object-map on
    // its own, so the advice names it too and matches what the image will have.
    let mut fix = features;
    if fix & (FAST_DIFF | OBJECT_MAP) != 0 {
        fix |= OBJECT_MAP | FAST_DIFF;
    }
    if fix & (OBJECT_MAP | JOURNALING) != 0 {
        fix |= EXCLUSIVE_LOCK;
    }
    if for_clone {
        fix |= LAYERING;
    }
    let missing = |bit: u64| features & bit == 0;
    let need = if features & FAST_DIFF != 0 && missing(OBJECT_MAP) {
        Some(if missing(EXCLUSIVE_LOCK) {
            "fast-diff needs object-map, which needs exclusive-lock"
        } else {
            "fast-diff needs object-map"
        })
    } else if features & OBJECT_MAP != 0 && missing(EXCLUSIVE_LOCK) {
        Some("object-map needs exclusive-lock")
    } else if features & JOURNALING != 0 && missing(EXCLUSIVE_LOCK) {
        Some("journaling needs exclusive-lock")
    } else if for_clone && missing(LAYERING) {
        Some("a clone needs layering")
    } else {
        None
    };
    match need {
        None => Ok(()),
        Some(need) => Err(Error::InvalidInput(format!(
            "image feature {need}: use --image-feature {}",
            feature_names(fix).join(",")
        ))),
    }
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

const OP_NAMES: [(u64, &str); 4] = [
    (
        sys::RBD_OPERATION_FEATURE_CLONE_PARENT as u64,
        "clone-parent",
    ),
    (sys::RBD_OPERATION_FEATURE_CLONE_CHILD as u64, "clone-child"),
    (sys::RBD_OPERATION_FEATURE_GROUP as u64, "group"),
    (sys::RBD_OPERATION_FEATURE_SNAP_TRASH as u64, "snap-trash"),
];

/// Operation feature names in bit order, as `rbd info` lists them (`op_features`).
pub fn op_feature_names(op_features: u64) -> Vec<String> {
    OP_NAMES
        .iter()
        .filter(|(bit, _)| op_features & bit != 0)
        .map(|(_, n)| n.to_string())
        .collect()
}

const FLAG_NAMES: [(u64, &str); 2] = [
    (
        sys::RBD_FLAG_OBJECT_MAP_INVALID as u64,
        "object map invalid",
    ),
    (sys::RBD_FLAG_FAST_DIFF_INVALID as u64, "fast diff invalid"),
];

/// Image flag names in bit order, as `rbd info` lists them (`flags`).
pub fn flag_names(flags: u64) -> Vec<String> {
    FLAG_NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, n)| n.to_string())
        .collect()
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
    fn parses_what_rbd_parses() {
        assert_eq!(parse_features(&["layering,", "deep-flatten"]).unwrap(), 33);
        assert_eq!(parse_features::<&str>(&[]).unwrap(), 0);
        // rbd 16.2 refuses these as arguments.
        for bad in ["dirty-cache", "61", "Layering", " layering", "layering;x"] {
            assert!(parse_features(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn dependencies_refused_with_the_fix() {
        let msg = |f: &str, clone: bool| {
            check_requested(parse_features(&[f]).unwrap(), clone)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            msg("fast-diff", false),
            "image feature fast-diff needs object-map, which needs exclusive-lock: use --image-feature exclusive-lock,object-map,fast-diff"
        );
        assert_eq!(
            msg("object-map", false),
            "image feature object-map needs exclusive-lock: use --image-feature exclusive-lock,object-map,fast-diff"
        );
        assert_eq!(
            msg("layering,journaling", false),
            "image feature journaling needs exclusive-lock: use --image-feature layering,exclusive-lock,journaling"
        );
        assert!(msg("exclusive-lock", true).contains("layering,exclusive-lock"));
        for f in [
            "striping",
            "data-pool",
            "operations",
            "migrating",
            "non-primary",
        ] {
            assert!(
                msg(f, false).starts_with(&format!("image feature {f} cannot")),
                "{f}"
            );
        }
        for ok in [
            "layering",
            "exclusive-lock,object-map",
            "exclusive-lock,journaling",
            "deep-flatten",
        ] {
            assert!(
                check_requested(parse_features(&[ok]).unwrap(), false).is_ok(),
                "{ok}"
            );
        }
        assert!(check_requested(1 | 4, true).is_ok());
    }

    #[test]
    fn layering_is_krbd_safe_journaling_is_not() {
        assert!(krbd_unsupported(1).is_empty());
        assert_eq!(krbd_unsupported(1 | 64), ["journaling"]);
        assert_eq!(krbd_unsupported(1 | 8), ["object-map (kernel 5.3+)"]);
    }
}
