//! `rbdkit info POOL/IMAGE[@SNAP]`: what `rbd info` shows, plus clone depth, snapshots with their
//! protection, and whether a kernel client can map the feature set.
use crate::global::Global;
use clap::Args;
use rbdkit::ceph::{feature_names, krbd_unsupported, Image, ImageSpec, LinkedImage, SnapInfo};
use rbdkit::units::format_size;
use serde::Serialize;
use std::process::ExitCode;

/// Arguments of `rbdkit info`.
#[derive(Args)]
pub struct InfoArgs {
    /// The image, POOL[/NAMESPACE]/IMAGE[@SNAP].
    pub image: ImageSpec,
}

/// Everything `info` reports.
#[derive(Serialize)]
struct Info {
    image: String,
    size: u64,
    objects: u64,
    order: u32,
    object_size: u64,
    features: Vec<String>,
    op_features: u64,
    parent: Option<LinkedImage>,
    overlap: Option<u64>,
    clone_depth: u32,
    snapshots: Vec<SnapInfo>,
    krbd_compatible: bool,
    krbd_unsupported_features: Vec<String>,
}

/// Shows the image.
pub fn run(a: InfoArgs, g: &Global) -> rbdkit::Result<ExitCode> {
    let cluster = g.connect()?;
    let io = cluster.ioctx(&a.image.pool, a.image.namespace.as_deref())?;
    let image = Image::open_read_only(&io, &a.image.image, a.image.snap.as_deref())?;
    let stat = image.stat()?;
    let features = image.features()?;
    let parent = image.parent()?;
    let overlap = if parent.is_some() {
        Some(image.overlap()?)
    } else {
        None
    };
    let unsupported = krbd_unsupported(features);
    let info = Info {
        image: a.image.to_string(),
        size: stat.size,
        objects: stat.num_objects,
        order: stat.order,
        object_size: stat.object_size,
        features: feature_names(features),
        op_features: image.op_features()?,
        clone_depth: rbdkit::clone::clone_depth(&image)?,
        parent,
        overlap,
        snapshots: image.snapshots()?,
        krbd_compatible: unsupported.is_empty(),
        krbd_unsupported_features: unsupported,
    };
    if g.json() {
        super::print_json(&info)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("rbd image '{}':", info.image);
    outln!(
        "\tsize {} in {} objects",
        format_size(info.size),
        info.objects
    );
    outln!(
        "\torder {} ({} objects)",
        info.order,
        format_size(info.object_size)
    );
    outln!("\tfeatures: {}", info.features.join(", "));
    if let Some(p) = &info.parent {
        outln!(
            "\tparent: {}{}",
            p.spec(),
            if p.trash { " (trash)" } else { "" }
        );
        outln!("\toverlap: {}", format_size(info.overlap.unwrap_or(0)));
    }
    outln!("\tclone depth: {}", info.clone_depth);
    if info.krbd_compatible {
        outln!("\tkrbd: mappable by any kernel client");
    } else {
        outln!(
            "\tkrbd: needs a recent kernel or cannot be mapped: {}",
            info.krbd_unsupported_features.join(", ")
        );
    }
    outln!("\tsnapshots: {}", info.snapshots.len());
    for s in &info.snapshots {
        outln!(
            "\t\t{} ({}){}",
            s.name,
            format_size(s.size),
            if s.protected { " protected" } else { "" }
        );
    }
    Ok(ExitCode::SUCCESS)
}
