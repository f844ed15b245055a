//! What a new image is made with when the user names nothing, read from the cluster's config as
//! librbd reads it, and librbd's create-time layout rules checked before anything is made (so a
//! bad layout is one line naming the value that works, not a bare EINVAL).
//!
//! Precedence for the features of a new image: `--image-feature`, then `rbd_default_features`
//! when the config (conf file, `CEPH_ARGS`, the monitors' config database) sets it to anything
//! but librbd's built-in default, then layering alone. rbdkit's own default differs from
//! librbd's (everything, which older kernel clients cannot map) on purpose; an operator who
//! chose a default gets it, as with `rbd`.
//!
//! Nothing here prints; the options are only read, never set.
use super::features::{check_requested, Features, SETTABLE};
use super::{Cluster, CreateOptions};
use crate::error::{Error, Result};
use librbd_sys as sys;

const LAYERING: Features = sys::RBD_FEATURE_LAYERING as Features;

/// librbd's built-in `rbd_default_features` (layering, exclusive-lock, object-map, fast-diff,
/// deep-flatten), unchanged since Jewel. A constant, because librados offers no way to read an
/// option's default: even a fresh, unconfigured handle has `CEPH_ARGS` applied when created.
const LIBRBD_DEFAULT_FEATURES: Features = 61;

/// The features `rbd_default_features` asks for, when the cluster's config sets it to anything
/// but librbd's built-in default; `None` when it is left alone (or set to that same value, which
/// cannot be told apart). The bits librbd decides itself
/// (striping and data-pool from the layout, its internal ones) are dropped, as librbd drops
/// them; a set librbd would refuse (object-map without exclusive-lock) is refused here, naming
/// the option.
pub fn default_features(cluster: &Cluster) -> Result<Option<Features>> {
    let value = cluster.conf_get("rbd_default_features")?;
    // Ceph's option validator stores the names an operator writes as the number they mean.
    let bits: Features = value.trim().parse().map_err(|_| {
        Error::Other(format!(
            "rbd_default_features = '{}' in the cluster config is not a feature mask",
            value.escape_debug()
        ))
    })?;
    if bits == LIBRBD_DEFAULT_FEATURES {
        return Ok(None);
    }
    let bits = bits & SETTABLE;
    check_requested(bits, false).map_err(|e| {
        Error::Other(format!(
            "rbd_default_features = {value} in the cluster config cannot make an image: {e} (or fix the option)"
        ))
    })?;
    Ok(Some(bits))
}

/// librbd's striping rules (its `validate_striping`): unit and count given together and above
/// 0, the unit at least 512 bytes and a divisor of the object size (so a power of two no larger
/// than it). `order` is log2 of the object size.
pub fn check_striping(order: u8, unit: Option<u64>, count: Option<u64>) -> Result<()> {
    // The count has no rule of its own past "above 0": any number of objects can be striped over.
    let unit = match (unit, count) {
        (None, None) => return Ok(()),
        (Some(u), Some(c)) if u > 0 && c > 0 => u,
        _ => {
            return Err(Error::InvalidInput(
                "--stripe-unit and --stripe-count go together, both above 0 (e.g. --stripe-unit 64K --stripe-count 16)".into(),
            ))
        }
    };
    let object_size = 1u64 << order;
    if unit < 512 {
        return Err(Error::InvalidInput(format!(
            "--stripe-unit {unit}: must be at least 512 bytes"
        )));
    }
    if unit > object_size || !object_size.is_multiple_of(unit) {
        return Err(Error::InvalidInput(format!(
            "--stripe-unit {unit}: must divide the object size ({object_size} bytes): a power of two from 512 to {object_size}"
        )));
    }
    Ok(())
}

/// `opts` with the defaults filled in that librbd would otherwise take silently (features), and
/// the striping checked against the object size the image will have.
pub(crate) fn resolve(cluster: &Cluster, opts: &CreateOptions) -> Result<CreateOptions> {
    let mut opts = opts.clone();
    if opts.features.is_none() {
        opts.features = Some(default_features(cluster)?.unwrap_or(LAYERING));
    }
    if opts.stripe_unit.is_some() || opts.stripe_count.is_some() {
        let order = match opts.order {
            Some(o) => o,
            None => default_order(cluster)?,
        };
        check_striping(order, opts.stripe_unit, opts.stripe_count)?;
    }
    Ok(opts)
}

/// `rbd_default_order`: the object size librbd gives an image created without one.
fn default_order(cluster: &Cluster) -> Result<u8> {
    let value = cluster.conf_get("rbd_default_order")?;
    value.trim().parse().map_err(|_| {
        Error::Other(format!(
            "rbd_default_order = '{}' in the cluster config is not a number",
            value.escape_debug()
        ))
    })
}

/// Why librbd refused `action` (`create image POOL/NAME`, `clone A@S to B`) because of the new
/// image's data pool, when that is the cause: the
/// pool (from `--data-pool`, else `rbd_default_data_pool`) does not exist (`ENOENT`), or it is
/// an erasure-coded pool without `allow_ec_overwrites`, which RBD needs (`EINVAL`). `None` when
/// no data pool is involved or it is not the cause: the caller reports librbd's error.
pub(crate) fn data_pool_error(
    cluster: &Cluster,
    action: &str,
    opts: &CreateOptions,
    ret: i32,
) -> Option<Error> {
    let (pool, from) = match &opts.data_pool {
        Some(p) => (p.clone(), "--data-pool"),
        None => {
            let p = cluster.conf_get("rbd_default_data_pool").ok()?;
            (p, "rbd_default_data_pool in the cluster config")
        }
    };
    if pool.is_empty() {
        return None;
    }
    let shown = pool.escape_debug();
    if ret == -libc::ENOENT && cluster.ioctx(&pool, None).is_err() {
        return Some(Error::Other(format!(
            "{action}: ENOENT — data pool {shown} ({from}) does not exist; list pools with `ceph osd pool ls`"
        )));
    }
    if ret == -libc::EINVAL && ec_without_overwrites(cluster, &pool) {
        return Some(Error::Other(format!(
            "{action}: EINVAL — data pool {shown} ({from}) is erasure-coded without overwrites, which RBD needs; run `ceph osd pool set {shown} allow_ec_overwrites true`"
        )));
    }
    None
}

/// Whether `pool` is an erasure-coded pool with `allow_ec_overwrites` off. The monitor answers
/// the question only for erasure-coded pools; any other answer (a replicated pool, no mon caps)
/// is "no", so the caller keeps librbd's own error.
fn ec_without_overwrites(cluster: &Cluster, pool: &str) -> bool {
    let cmd = serde_json::json!({
        "prefix": "osd pool get", "pool": pool, "var": "allow_ec_overwrites", "format": "json"
    });
    let Ok((out, _)) = cluster.mon_command(&cmd.to_string()) else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&out)
        .ok()
        .and_then(|v| v["allow_ec_overwrites"].as_bool())
        == Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn striping_follows_librbd() {
        for (unit, count) in [(64 << 10, 16), (512, 2), (4 << 20, 1), (4 << 20, 4)] {
            assert!(
                check_striping(22, Some(unit), Some(count)).is_ok(),
                "{unit}"
            );
        }
        assert!(check_striping(22, None, None).is_ok());
        let msg = |o, u, c| check_striping(o, u, c).unwrap_err().to_string();
        assert!(msg(22, Some(65536), None).contains("go together"));
        assert!(msg(22, None, Some(2)).contains("go together"));
        assert!(msg(22, Some(65536), Some(0)).contains("above 0"));
        assert!(msg(22, Some(256), Some(2)).contains("at least 512"));
        assert!(msg(22, Some(3000), Some(2)).contains("divide the object size"));
        assert!(msg(22, Some(8 << 20), Some(2)).contains("divide"));
        assert!(msg(12, Some(8192), Some(2)).contains("4096 bytes"));
    }
}
