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
    if opts.features.is_none() && g.verbosity() >= 1 {
        // Say where the features come from, since the flags do not name them.
        match rbdkit::ceph::default_features(&cluster)? {
            Some(f) => eprintln!(
                "rbdkit: features from rbd_default_features in the cluster config: {}",
                feature_names(f).join(",")
            ),
            None => eprintln!(
                "rbdkit: features: layering (rbdkit's default: rbd_default_features is librbd's own)"
            ),
        }
    }
    let io = cluster.ioctx(&a.image.pool, a.image.namespace.as_deref())?;
    io.create_image(&a.image.image, a.size, &opts)?;
    // Report what librbd made, not what was asked: librbd adds features (fast-diff with
    // object-map) and the cluster's defaults decide the object size.
    let read_back = || -> rbdkit::Result<_> {
        let image = Image::open_read_only(&io, &a.image.image, None)?;
        Ok((image.stat()?, image.features()?, image.data_pool()?))
    };
    let (info, features, data_pool) = read_back().map_err(|e| {
        rbdkit::Error::Other(format!(
            "created {} but could not read it back ({e}): check it with `rbd info {}`",
            a.image, a.image
        ))
    })?;
    let features = feature_names(features);
    if g.json() {
        let mut json = serde_json::json!({
            "image": a.image.to_string(),
            "size": info.size,
            "features": features,
            "object_size": info.object_size,
        });
        // As `rbd info` does: the key only for an image whose data lives in another pool.
        if let Some(pool) = &data_pool {
            json["data_pool"] = pool.clone().into();
        }
        super::print_json(g, &json)?;
    } else {
        outln!(
            "created {} ({}, features: {}{})",
            a.image,
            rbdkit::units::format_size(info.size),
            features.join(", "),
            data_pool.map_or(String::new(), |p| format!(", data pool: {p}"))
        );
    }
    Ok(ExitCode::SUCCESS)
}
