//! `rbdkit checksum TARGET`: the checksum `import-raw` prints, of an RBD image or snapshot
//! (read back in parallel) or of a raw or qcow2 file's virtual disk, so an image can be checked
//! against its import record at any time.
use crate::global::Global;
use clap::Args;
use rbdkit::copy::{checksum_disk, Checksum, Control};
use rbdkit::disk::DiskSource;
use rbdkit::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;

/// Arguments of `rbdkit checksum`.
#[derive(Args)]
pub struct ChecksumArgs {
    /// POOL[/NAMESPACE]/IMAGE[@SNAP], or a raw or qcow2 file (a path that exists, or
    /// `gluster://HOST[:PORT]/VOLUME/PATH`; `rbd:SPEC` and `file:PATH` say which when a name
    /// could be both).
    #[arg(required_unless_present = "print_recipe")]
    pub target: Option<String>,
    /// Print a Python program that recomputes the checksum from the raw image on its stdin
    /// (`rbd export IMG - | python3 -c "$(rbdkit checksum --print-recipe)"`), and exit: the
    /// way to check rbdkit's numbers without rbdkit.
    #[arg(long = "print-recipe", conflicts_with = "target")]
    pub print_recipe: bool,
    /// `sha256-tree` (what `import-raw` prints by default), `sha256-blocks` (what it printed
    /// before) or `sha256` (what `sha256sum` of the raw image prints).
    #[arg(long, value_enum, default_value = "sha256-tree")]
    pub checksum: super::source::ChecksumArg,
    #[command(flatten)]
    pub copy: super::source::CopyFlags,
}

/// What `checksum` was asked to read.
enum Target {
    File(PathBuf),
    #[cfg(feature = "rbd")]
    Image(rbdkit::ceph::ImageSpec),
}

fn target(s: &str) -> rbdkit::Result<Target> {
    if let Some(p) = s.strip_prefix("file:") {
        return Ok(Target::File(p.into()));
    }
    let spec = s.strip_prefix("rbd:");
    if spec.is_none() && (Path::new(s).exists() || s.starts_with("gluster://")) {
        return Ok(Target::File(s.into()));
    }
    #[cfg(feature = "rbd")]
    {
        rbdkit::ceph::ImageSpec::parse(spec.unwrap_or(s))
            .map(Target::Image)
            .map_err(|e| {
                Error::InvalidInput(format!("{s}: no such file, and not an image spec ({e})"))
            })
    }
    #[cfg(not(feature = "rbd"))]
    Err(Error::InvalidInput(format!(
        "{s}: no such file (this build has no RBD support)"
    )))
}

/// Prints the checksum.
pub fn run(a: ChecksumArgs, g: &Global) -> rbdkit::Result<ExitCode> {
    let kind: Checksum = a.checksum.kind().ok_or_else(|| {
        Error::InvalidInput("--checksum none: choose sha256-tree, sha256-blocks or sha256".into())
    })?;
    let Some(name) = a.target.as_deref() else {
        // Only --print-recipe goes without a target (clap requires one otherwise).
        outln!("{}", kind.recipe());
        return Ok(ExitCode::SUCCESS);
    };
    let opts = a.copy.copy_options(4 << 20, Some(kind))?;
    let cancel = crate::cancel::flag();
    let started = std::time::Instant::now();
    let hash = |disk: &dyn DiskSource| {
        let bar = crate::progress::bytes_bar(disk.virtual_size(), "reading", !g.no_progress);
        let ctl = Control {
            progress: &|done, _| bar.set_position(done),
            cancel: &cancel,
        };
        let sum = checksum_disk(disk, &opts, &ctl);
        bar.finish_and_clear();
        match sum {
            Err(_) if cancel.load(Ordering::Relaxed) => {
                Err(Error::Interrupted(format!("checksum of {} stopped", name)))
            }
            other => other.map(|s| (s, disk.virtual_size())),
        }
    };
    let (sum, size) = match target(name)? {
        Target::File(p) => hash(rbdkit::disk::open(&p, &a.copy.open_options(&p)?)?.as_ref())?,
        #[cfg(feature = "rbd")]
        Target::Image(spec) => {
            let cluster = g.connect_for_bulk_io()?;
            let io = cluster.ioctx(&spec.pool, spec.namespace.as_deref())?;
            let image =
                rbdkit::ceph::Image::open_read_only(&io, &spec.image, spec.snap.as_deref())?;
            let size = image.stat()?.size;
            hash(&rbdkit::disk::rbd::RbdDisk::new(&image, size))?
        }
    };
    if g.json() {
        super::print_json(
            g,
            &serde_json::json!({
                "target": name,
                "virtual_size": size,
                "checksum_algorithm": kind,
                "checksum": sum,
                "elapsed_s": started.elapsed().as_secs_f64(),
            }),
        )?;
    } else {
        // sha256sum's layout, with the algorithm in front.
        outln!("{} {sum}  {}", kind.name(), name);
    }
    Ok(ExitCode::SUCCESS)
}
