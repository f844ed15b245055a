//! `rbdkit create POOL/IMAGE --size SIZE`: a format-2 image, layering only unless told otherwise.
use crate::global::Global;
use clap::Args;
use rbdkit::ceph::{create_image, feature_names, ImageSpec};
use std::process::ExitCode;

/// Arguments of `rbdkit create`.
#[derive(Args)]
pub struct CreateArgs {
    /// The new image, POOL[/NAMESPACE]/IMAGE.
    pub image: ImageSpec,
    /// Size: 20G, 512M, 1T; a bare number is MiB, as in rbd (1024 = 1 GiB).
    #[arg(long, value_parser = super::parse_image_size, allow_hyphen_values = true)]
    pub size: u64,
    #[command(flatten)]
    pub layout: super::ImageLayout,
}

/// Creates the image.
pub fn run(a: CreateArgs, g: &Global) -> rbdkit::Result<ExitCode> {
    a.image.forbid_snap()?;
    let opts = a.layout.create_options()?;
    let cluster = g.connect()?;
    let io = cluster.ioctx(&a.image.pool, a.image.namespace.as_deref())?;
    create_image(&io, &a.image.image, a.size, &opts)?;
    let features = feature_names(opts.features.unwrap_or(1));
    if g.json() {
        super::print_json(&serde_json::json!({
            "image": a.image.to_string(),
            "size": a.size,
            "features": features,
            "object_size": a.layout.object_size,
        }))?;
    } else {
        outln!(
            "created {} ({}, features: {})",
            a.image,
            rbdkit::units::format_size(a.size),
            features.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
