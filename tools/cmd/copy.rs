//! `rbdkit copy SRC DEST`: an RBD image or snapshot into a new image, in the same pool, another
//! pool or another cluster (`--dest-conf`, `--dest-id`: Nova's and Glance's multi-cluster
//! case), reading only the objects that exist and writing only non-zero data, published
//! atomically like an import (temporary name, checksum, `--verify`, `--snap`).
use crate::global::Global;
use clap::Args;
use rbdkit::ceph::{Image, ImageSpec};
use rbdkit::copy::Control;
use rbdkit::disk::rbd::RbdDisk;
use rbdkit::import::{import, ImportRequest};
use rbdkit::input::Input;
use rbdkit::units::format_size;
use rbdkit::Error;
use std::process::ExitCode;

/// Arguments of `rbdkit copy`.
#[derive(Args)]
pub struct CopyArgs {
    /// The image or snapshot to copy, POOL[/NAMESPACE]/IMAGE[@SNAP].
    pub src: ImageSpec,
    /// The new image, POOL[/NAMESPACE]/IMAGE (never overwritten).
    pub dest: ImageSpec,
    #[command(flatten)]
    pub dest_flags: super::dest::DestFlags,
    #[command(flatten)]
    pub publish: super::publish::PublishFlags,
    #[command(flatten)]
    pub checksum: super::source::ChecksumFlags,
    #[command(flatten)]
    pub engine: super::source::EngineFlags,
    /// Object size and features of the new image (default object size: the source's).
    #[command(flatten)]
    pub layout: super::ImageLayout,
}

/// Copies.
pub fn run(a: CopyArgs, g: &Global) -> rbdkit::Result<ExitCode> {
    a.dest.forbid_snap()?;
    let kind = a.checksum.kind_to_verify(a.publish.verify)?;
    let mut create = a.layout.create_options(false)?;
    let src_cluster = g.connect_for_bulk_io()?;
    let io = src_cluster.ioctx(&a.src.pool, a.src.namespace.as_deref())?;
    let image = Image::open_read_only(&io, &a.src.image, a.src.snap.as_deref())?;
    let info = image.stat()?;
    create.order = create.order.or(Some(info.order as u8));
    // Another cluster or client only when asked: one connection otherwise.
    let dest_cluster = a.dest_flags.connect(g)?;
    let req = ImportRequest {
        dest: a.dest.clone(),
        size: None,
        create,
        copy: a.engine.copy_options(info.object_size, kind)?,
        concurrency: a.publish.concurrency,
        snap: a.publish.snap.clone(),
        protect: a.publish.protect,
        verify: a.publish.verify,
        source_format: "rbd".into(),
    };
    let cancel = crate::cancel::flag();
    let bar = crate::progress::bytes_bar(info.size, "copying", !g.no_progress);
    let ctl = Control {
        progress: &|done, _| bar.set_position(done),
        cancel: &cancel,
    };
    let source = Input::Disk(Box::new(RbdDisk::new(&image, info.size)));
    let result = import(
        dest_cluster.as_ref().unwrap_or(&src_cluster),
        &req,
        source,
        &ctl,
    );
    bar.finish_and_clear();
    let r = match result {
        Err(Error::Interrupted(m)) => {
            return Err(Error::Interrupted(format!(
                "copy of {} to {} stopped by a signal: {m}",
                a.src, a.dest
            )))
        }
        other => other?,
    };
    if g.json() {
        super::print_json(g, &r)?;
    } else {
        outln!(
            "copied {} to {}: {} of data, {} of zeros not written, {:.2} s, {:.1} MiB/s",
            a.src,
            r.image,
            format_size(r.bytes_written),
            format_size(r.bytes_zero_skipped),
            r.elapsed_s,
            r.mib_per_s
        );
        super::publish::print_checksum_and_snap(&r);
    }
    Ok(ExitCode::SUCCESS)
}
