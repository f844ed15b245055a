//! Image layout flags shared by `create`, `clone` and `import-raw`.
use clap::Args;
use rbdkit::ceph::{check_requested, parse_features, CreateOptions};
use rbdkit::Error;

/// Object size and features of a new image, as the rbd CLI names them.
#[derive(Args, Clone, Debug)]
pub struct ImageLayout {
    /// Object size (power of two, 4K..32M; default: the cluster's, 4M).
    #[arg(long = "object-size", value_parser = super::parse_size, allow_hyphen_values = true)]
    pub object_size: Option<u64>,
    /// Image feature, as rbd names it (repeatable, or comma-separated): layering, exclusive-lock,
    /// object-map, fast-diff, deep-flatten, journaling. Default: layering only, which any kernel
    /// client can map.
    #[arg(long = "image-feature")]
    pub image_feature: Vec<String>,
    /// Stripe unit (with --stripe-count).
    #[arg(
        long = "stripe-unit",
        value_parser = super::parse_size,
        allow_hyphen_values = true,
        requires = "stripe_count"
    )]
    pub stripe_unit: Option<u64>,
    /// Stripe count (with --stripe-unit).
    #[arg(long = "stripe-count", requires = "stripe_unit")]
    pub stripe_count: Option<u64>,
}

impl ImageLayout {
    /// Checked create options; `for_clone` adds the clone's own rule (layering is required).
    /// Feature dependencies are checked here, before the cluster is contacted, so a bad
    /// combination is refused as bad usage (exit 2) and nothing is created.
    pub fn create_options(&self, for_clone: bool) -> rbdkit::Result<CreateOptions> {
        let order = match self.object_size {
            None => None,
            Some(s) if s.is_power_of_two() && (4096..=32 << 20).contains(&s) => {
                Some(s.trailing_zeros() as u8)
            }
            Some(s) => {
                return Err(Error::InvalidInput(format!(
                    "--object-size {s}: must be a power of two between 4K and 32M"
                )))
            }
        };
        let features = if self.image_feature.is_empty() {
            None
        } else {
            let f = parse_features(&self.image_feature)?;
            check_requested(f, for_clone)?;
            Some(f)
        };
        Ok(CreateOptions {
            features,
            order,
            stripe_unit: self.stripe_unit,
            stripe_count: self.stripe_count,
            clone_format: None,
        })
    }
}
