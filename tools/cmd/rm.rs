//! `rbdkit rm POOL/IMAGE`: removes an image; refuses, clearly, one with snapshots or children.
use crate::global::Global;
use clap::Args;
use rbdkit::ceph::{Image, ImageSpec};
use rbdkit::Error;
use std::process::ExitCode;

/// Arguments of `rbdkit rm`.
#[derive(Args)]
pub struct RmArgs {
    /// The image to remove, POOL[/NAMESPACE]/IMAGE.
    pub image: ImageSpec,
}

/// Removes the image.
pub fn run(a: RmArgs, g: &Global) -> rbdkit::Result<ExitCode> {
    a.image.forbid_snap()?;
    let cluster = g.connect()?;
    let io = cluster.ioctx(&a.image.pool, a.image.namespace.as_deref())?;
    {
        // Check first so the refusal names the snapshots, instead of librbd's bare ENOTEMPTY.
        let image = Image::open_read_only(&io, &a.image.image, None)?;
        let snaps = image.snapshots()?;
        if !snaps.is_empty() {
            let names: Vec<&str> = snaps.iter().map(|s| s.name.as_str()).collect();
            return Err(Error::Other(format!(
                "refusing to remove {}: it has {} snapshot(s) ({}); remove them first (unprotect protected ones)",
                a.image,
                snaps.len(),
                names.join(", ")
            )));
        }
    }
    io.remove_image(&a.image.image)?;
    if g.json() {
        super::print_json(g, &serde_json::json!({ "removed": a.image.to_string() }))?;
    } else {
        outln!("removed {}", a.image);
    }
    Ok(ExitCode::SUCCESS)
}
