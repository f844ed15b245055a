//! `rbdkit info POOL/IMAGE[@SNAP]`: what `rbd info` shows, plus clone depth, snapshots with their
//! protection, and whether a kernel client can map the feature set.
use crate::global::Global;
use clap::Args;
use rbdkit::ceph::{
    ctime_string, feature_names, flag_names, krbd_unsupported, op_feature_names, Image, ImageSpec,
    SnapInfo,
};
use rbdkit::units::format_size;
use serde::Serialize;
use std::process::ExitCode;

/// `RBD_FEATURE_STRIPINGV2`: `rbd info` shows the striping only for images that have it.
const STRIPINGV2: u64 = 1 << 1;

/// Arguments of `rbdkit info`.
#[derive(Args)]
pub struct InfoArgs {
    /// The image, POOL[/NAMESPACE]/IMAGE[@SNAP].
    pub image: ImageSpec,
}

/// Everything `info` reports. The first fields are `rbd info --format json`'s, with its names,
/// types and omissions, so a script can switch tool; rbdkit's own follow under their names.
#[derive(Serialize)]
struct Info {
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    id: String,
    size: u64,
    objects: u64,
    order: u32,
    object_size: u64,
    snapshot_count: usize,
    /// The pool of the data objects, when not the image's own (`rbd create --data-pool`).
    #[serde(skip_serializing_if = "Option::is_none")]
    data_pool: Option<String>,
    block_name_prefix: String,
    format: u8,
    features: Vec<String>,
    op_features: Vec<String>,
    flags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    create_timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    modify_timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<Parent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stripe_unit: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stripe_count: Option<u64>,
    /// At a snapshot: "true" or "false", a string as `rbd` prints it.
    #[serde(skip_serializing_if = "Option::is_none")]
    protected: Option<String>,
    // rbdkit's own fields.
    image: String,
    overlap: Option<u64>,
    clone_depth: u32,
    snapshots: Vec<SnapInfo>,
    krbd_compatible: bool,
    krbd_unsupported_features: Vec<String>,
}

/// `parent` as `rbd info --format json` prints it.
#[derive(Serialize)]
struct Parent {
    pool: String,
    pool_namespace: String,
    image: String,
    id: String,
    snapshot: String,
    trash: bool,
    overlap: u64,
    /// The parent as one spec, POOL[/NAMESPACE]/IMAGE@SNAP, for the plain output.
    #[serde(skip)]
    spec: String,
}

/// The timestamp as `rbd info` prints it, or none when librbd has none (format 1).
fn timestamp(secs: i64) -> Option<String> {
    (secs != 0).then(|| ctime_string(secs))
}

/// Shows the image.
pub fn run(a: InfoArgs, g: &Global) -> rbdkit::Result<ExitCode> {
    let cluster = g.connect()?;
    let io = cluster.ioctx(&a.image.pool, a.image.namespace.as_deref())?;
    let image = Image::open_read_only(&io, &a.image.image, a.image.snap.as_deref())?;
    let stat = image.stat()?;
    let features = image.features()?;
    let linked = image.parent()?;
    let overlap = if linked.is_some() {
        Some(image.overlap()?)
    } else {
        None
    };
    let parent = linked.as_ref().map(|p| Parent {
        pool: p.pool.clone(),
        pool_namespace: p.namespace.clone(),
        image: p.image.clone(),
        id: p.image_id.clone(),
        snapshot: p.snap.clone().unwrap_or_default(),
        trash: p.trash,
        overlap: overlap.unwrap_or(0),
        spec: p.spec(),
    });
    let striping = if features & STRIPINGV2 != 0 {
        Some(image.striping()?)
    } else {
        None
    };
    let data_pool = image.data_pool()?;
    let protected = match a.image.snap.as_deref() {
        Some(s) => Some(image.snap_is_protected(s)?.to_string()),
        None => None,
    };
    let times = image.timestamps()?;
    let snapshots = image.snapshots()?;
    let unsupported = krbd_unsupported(features);
    let info = Info {
        name: a.image.image.clone(),
        id: image.id()?,
        size: stat.size,
        objects: stat.num_objects,
        order: stat.order,
        object_size: stat.object_size,
        snapshot_count: snapshots.len(),
        data_pool,
        block_name_prefix: image.block_name_prefix()?,
        format: image.format()?,
        features: feature_names(features),
        op_features: op_feature_names(image.op_features()?),
        flags: flag_names(image.flags()?),
        create_timestamp: timestamp(times.create),
        access_timestamp: timestamp(times.access),
        modify_timestamp: timestamp(times.modify),
        parent,
        stripe_unit: striping.map(|s| s.0),
        stripe_count: striping.map(|s| s.1),
        protected,
        image: a.image.to_string(),
        clone_depth: rbdkit::clone::clone_depth(&image)?,
        overlap,
        snapshots,
        krbd_compatible: unsupported.is_empty(),
        krbd_unsupported_features: unsupported,
    };
    if g.json() {
        super::print_json(g, &info)?;
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
    if let Some(pool) = &info.data_pool {
        outln!("\tdata_pool: {pool}");
    }
    outln!("\tfeatures: {}", info.features.join(", "));
    if let Some(p) = &info.parent {
        outln!(
            "\tparent: {}{}",
            p.spec,
            if p.trash { " (trash)" } else { "" }
        );
        outln!("\toverlap: {}", format_size(p.overlap));
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
