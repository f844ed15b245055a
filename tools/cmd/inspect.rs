//! `rbdkit inspect FILE|-`: what an image is and whether it is safe to import, from its
//! metadata alone (see `rbdkit::disk::inspect`). Exit 0 safe, 1 unsafe or unreadable.
use crate::global::Global;
use clap::Args;
use rbdkit::disk::inspect::{inspect_file, inspect_stream, Inspection};
use rbdkit::text::escape;
use rbdkit::units::format_size;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `rbdkit inspect`.
#[derive(Args)]
pub struct InspectArgs {
    /// The image file, or `-` for stdin (only its first bytes are read).
    pub src: PathBuf,
    /// Also apply the rules of Glance, Nova and Cinder (oslo.utils format_inspector): they
    /// refuse extended L2, QED, LUKS v2, VMDK other than monolithicSparse/streamOptimized, ...
    #[arg(long)]
    pub openstack: bool,
}

/// Inspects.
pub fn run(a: InspectArgs, g: &Global) -> rbdkit::Result<ExitCode> {
    let r = if a.src.as_os_str() == "-" {
        inspect_stream(&mut std::io::stdin().lock(), "-", a.openstack)?
    } else {
        inspect_file(&a.src, a.openstack)?
    };
    if g.json() {
        super::print_json(g, &r)?;
    } else {
        print_plain(&r);
    }
    Ok(if r.safe {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `qemu-img info`'s layout; every name taken from the image is escaped.
fn print_plain(r: &Inspection) {
    let opt_size = |v: Option<u64>| {
        v.map_or("unknown".to_string(), |b| {
            format!("{} ({b} bytes)", format_size(b))
        })
    };
    let mut lines = vec![
        ("image", escape(&r.filename)),
        (
            "file format",
            format!("{} (disk_format {})", r.format, r.disk_format),
        ),
        ("virtual size", opt_size(r.virtual_size)),
        ("file size", opt_size(Some(r.file_size))),
    ];
    if let Some(d) = r.disk_size {
        lines.push(("disk size", opt_size(Some(d))));
    }
    if let Some(c) = r.cluster_size {
        lines.push(("cluster_size", c.to_string()));
    }
    if let Some(s) = &r.subformat {
        lines.push(("subformat", escape(s)));
    }
    if let Some(q) = &r.qcow2 {
        lines.push(("compat", q.compat.to_string()));
        lines.push(("compression type", q.compression_type.to_string()));
        lines.push(("extended l2", q.extended_l2.to_string()));
        lines.push(("dirty", q.dirty.to_string()));
        if q.data_file_raw {
            lines.push(("data file raw", "true".into()));
        }
    }
    if let Some(v) = &r.vmdk {
        if let Some(n) = v.version {
            lines.push(("version", n.to_string()));
        }
        lines.push(("compressed", v.compressed.to_string()));
        if v.footer {
            lines.push(("header in footer", "true".into()));
        }
        if v.descriptor_file {
            lines.push(("descriptor file", "true".into()));
        }
    }
    if let Some(b) = &r.backing_file {
        lines.push(("backing file", escape(b)));
    }
    if let Some(b) = &r.backing_format {
        lines.push(("backing file format", escape(b)));
    }
    if let Some(d) = &r.data_file {
        lines.push(("data file", escape(d)));
    }
    for e in &r.extents {
        lines.push(("extent", escape(e)));
    }
    if let Some(t) = &r.partition_table {
        lines.push(("partition table", t.clone()));
    }
    if let Some(a) = r.allocated_bytes {
        lines.push(("allocated", opt_size(Some(a))));
    }
    lines.push(("readable by rbdkit", r.readable.to_string()));
    lines.push(("safe", r.safe.to_string()));
    for (k, v) in lines {
        outln!("{k}: {v}");
    }
    for n in &r.notes {
        outln!("  note: {n}");
    }
    for why in &r.reasons {
        outln!("  unsafe: {}", escape(why));
    }
    for why in r.openstack_reasons.iter().flatten() {
        outln!("  openstack refuses: {}", escape(why));
    }
}
