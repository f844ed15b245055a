//! Image layout flags shared by `create`, `clone` and `import-raw`.
use clap::Args;
use rbdkit::ceph::{check_requested, check_striping, parse_features, CreateOptions};
use rbdkit::Error;

/// Object size, features, striping and data pool of a new image, as the rbd CLI names them.
#[derive(Args, Clone, Debug)]
pub struct ImageLayout {
    /// Object size (power of two, 4K..32M; default: the cluster's rbd_default_order, 4M).
    #[arg(long = "object-size", value_parser = super::parse_size, allow_hyphen_values = true)]
    pub object_size: Option<u64>,
    /// Object size as log2 of bytes, 12..=25 (22 = 4 MiB), as `rbd --order`; or --object-size.
    #[arg(
        long,
        conflicts_with = "object_size",
        value_parser = clap::value_parser!(u8).range(12..=25),
        allow_hyphen_values = true
    )]
    pub order: Option<u8>,
    /// Image feature, as rbd names it (repeatable, or comma-separated): layering, exclusive-lock,
    /// object-map, fast-diff, deep-flatten, journaling. Default: the cluster config's
    /// rbd_default_features if an operator set it, else layering only (any kernel client maps it).
    #[arg(long = "image-feature")]
    pub image_feature: Vec<String>,
    /// Stripe unit: a power of two from 512 bytes to the object size (with --stripe-count).
    /// librbd adds the striping feature unless it is one object-size stripe over one object.
    #[arg(
        long = "stripe-unit",
        value_parser = super::parse_size,
        allow_hyphen_values = true,
        requires = "stripe_count"
    )]
    pub stripe_unit: Option<u64>,
    /// Objects each stripe spans, at least 1 (with --stripe-unit).
    #[arg(
        long = "stripe-count",
        requires = "stripe_unit",
        value_parser = parse_stripe_count,
        allow_hyphen_values = true
    )]
    pub stripe_count: Option<u64>,
    /// Pool for the image's data objects, e.g. an erasure-coded pool with allow_ec_overwrites
    /// (the header and metadata stay in the image's pool). Default: the cluster config's
    /// rbd_default_data_pool, if set.
    #[arg(long = "data-pool", value_name = "POOL")]
    pub data_pool: Option<String>,
}

/// A stripe count: a whole number of objects, at least 1 (librbd's rule; 0 means "not given"
/// to librbd, which would then refuse the stripe unit alone).
fn parse_stripe_count(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "invalid stripe count '{s}': a whole number of objects, at least 1"
        )),
    }
}

impl ImageLayout {
    /// Checked create options; `for_clone` adds the clone's own rule (layering is required).
    /// Feature dependencies and the striping (against the object size, when given) are checked
    /// here, before the cluster is contacted, so a bad combination is refused as bad usage
    /// (exit 2) and nothing is created. What depends on the cluster's defaults is checked by
    /// the library when it creates the image.
    pub fn create_options(&self, for_clone: bool) -> rbdkit::Result<CreateOptions> {
        let order = match (self.object_size, self.order) {
            (_, Some(order)) => Some(order),
            (None, None) => None,
            (Some(s), None) if s.is_power_of_two() && (4096..=32 << 20).contains(&s) => {
                Some(s.trailing_zeros() as u8)
            }
            (Some(s), None) => {
                return Err(Error::InvalidInput(format!(
                    "--object-size {s}: must be a power of two between 4K and 32M"
                )))
            }
        };
        if let Some(order) = order {
            check_striping(order, self.stripe_unit, self.stripe_count)?;
        }
        let features = if self.image_feature.is_empty() {
            None
        } else {
            let f = parse_features(&self.image_feature)?;
            check_requested(f, for_clone)?;
            Some(f)
        };
        if self.data_pool.as_deref() == Some("") {
            return Err(Error::InvalidInput("--data-pool: empty pool name".into()));
        }
        Ok(CreateOptions {
            features,
            order,
            stripe_unit: self.stripe_unit,
            stripe_count: self.stripe_count,
            clone_format: None,
            data_pool: self.data_pool.clone(),
        })
    }
}
