//! `rbdkit create POOL/IMAGE --size SIZE`: a format-2 image, layering only unless told otherwise.
use crate::global::Global;
use clap::Args;
use rbdkit::ceph::{feature_names, Image, ImageSpec};
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
    let opts = a.layout.create_options(false)?;
    let cluster = g.connect()?;
    let io = cluster.ioctx(&a.image.pool, a.image.namespace.as_deref())?;
    io.create_image(&a.image.image, a.size, &opts)?;
    // Report what librbd made, not what was asked: librbd adds features (fast-diff with
    // object-map) and the cluster's defaults decide the object size.
    let read_back = || -> rbdkit::Result<_> {
        let image = Image::open_read_only(&io, &a.image.image, None)?;
        Ok((image.stat()?, image.features()?))
    };
    let (info, features) = read_back().map_err(|e| {
        rbdkit::Error::Other(format!(
            "created {} but could not read it back ({e}): check it with `rbd info {}`",
            a.image, a.image
        ))
    })?;
    let features = feature_names(features);
    if g.json() {
        super::print_json(
            g,
            &serde_json::json!({
                "image": a.image.to_string(),
                "size": info.size,
                "features": features,
                "object_size": info.object_size,
            }),
        )?;
    } else {
        outln!(
            "created {} ({}, features: {})",
            a.image,
            rbdkit::units::format_size(info.size),
            features.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
